package integration

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIOwnership: codex-launch started as root with --user an unprivileged
// uid refreshes a credential whose CODEX_HOME root left behind (directory,
// auth.json and both lock files owned by root); afterwards the CLI running as
// that uid refreshes and commits on its own. Every token the endpoint mints
// here expires inside the CLI's refresh window, so the CLI's turn after
// codex-launch's refresh must refresh again, as the uid, and must be able to
// take the locks, write its temporary file and rename it over auth.json.
func TestCLIOwnership(t *testing.T) {
	cliEachVersion(t, func(t *testing.T, env *cliEnv, v cliVersion) {
		t.Run("root-lock-files", func(t *testing.T) { cliRootLocks(t, env, v) })
		t.Run("launcher-user", func(t *testing.T) { cliOwnership(t, env, v) })
		t.Run("root-refresh-once", func(t *testing.T) { cliRootRefreshOnce(t, env, v) })
	})
}

func cliOwnership(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, gen0 := newDueCLIScenario(t, env, v, nil)
	// What a root process leaves behind: root-owned lock files, a
	// root-owned home that others cannot write.
	s.writeFile("auth.lock", nil, 0o600, nil)
	s.writeFile("auth.json.lock", nil, 0o600, nil)
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid := cliUIDCred()
	if err := os.Chown(s.Home, cliUID, cliUID); err != nil {
		t.Fatal(err)
	}

	// codex-launch as root, dropping to the uid for its child.
	user := strconv.Itoa(cliUID) + ":" + strconv.Itoa(cliUID)
	r := s.Launch(ctx, "--user", user, "--", "/bin/sh", "-c", "exit 0")
	if r.Code != 0 {
		t.Fatalf("codex-launch --user %s -- sh -c 'exit 0': %s", user, r)
	}
	if s.tokenPosts() != 1 || s.TM.PostsFor(gen0.RefreshToken) != 1 {
		t.Fatalf("codex-launch did not refresh once (%s): %s", s.postsSummary(), r)
	}
	g1, _ := s.TM.Latest(s.Account)
	if rt, _ := s.FileTokens(); rt != g1.RefreshToken {
		t.Fatalf("auth.json does not hold codex-launch's refresh")
	}
	cliCheckOwned(t, s.Dir, cliUID)

	// The CLI as the uid: its own refresh, its own commit. The backend
	// revokes codex-launch's access token, so the CLI's turn gets a 401 and
	// must refresh (unauthorized_recovery) with the refresh token codex-launch
	// committed, then write the result as the uid.
	s.BE.Reject(g1.AccessToken)
	turn := s.Codex(ctx, v, uid, "exec", "--skip-git-repo-check", "say hi")
	if turn.Code != 0 || !strings.Contains(turn.Stdout, cliBackendReply) {
		t.Fatalf("the CLI's turn as uid %d failed: %s", cliUID, turn)
	}
	g2, _ := s.TM.Latest(s.Account)
	if s.tokenPosts() != 2 || s.TM.PostsFor(g1.RefreshToken) != 1 || cliRequester(s.TM.Requests()[1]) != "cli" {
		t.Fatalf("the CLI as uid %d did not refresh once: token requests %s", cliUID, s.postsSummary())
	}
	if rt, _ := s.FileTokens(); rt != g2.RefreshToken {
		t.Fatalf("the CLI as uid %d redeemed its refresh token but auth.json does not hold the result: the login is lost (%s)\n%s",
			cliUID, s.postsSummary(), turn)
	}
	cliCheckOwned(t, s.Dir, cliUID)
	if turns := s.BE.Turns(); len(turns) == 0 || turns[len(turns)-1].AuthFP != cliFingerprint(g2.AccessToken) {
		t.Errorf("the CLI's turn did not use the tokens it refreshed")
	}
	t.Logf("CLI %s as uid %d refreshed and committed after codex-launch: %s", v.Version, cliUID, s.postsSummary())
}

// cliCheckOwned: the directory, auth.json and the lock files belong to uid and
// auth.json is private.
func cliCheckOwned(t *testing.T, dir string, uid int) {
	t.Helper()
	for _, name := range []string{".", "auth.json", "auth.lock", "auth.json.lock"} {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); os.IsNotExist(err) && name != "." && name != "auth.json" {
			continue
		}
		u, _, mode := cliOwnerOf(t, p)
		if u != uid {
			t.Errorf("%s is owned by uid %d, want %d", name, u, uid)
		}
		if name == "auth.json" && mode.Perm() != 0o600 {
			t.Errorf("auth.json has mode %v, want 0600", mode.Perm())
		}
	}
	// A commit needs a writable directory: the CLI writes a temporary file
	// next to auth.json and renames it.
	if st, err := os.Stat(dir); err == nil {
		if st.Sys().(*syscall.Stat_t).Uid != uint32(uid) || st.Mode().Perm()&0o200 == 0 {
			t.Errorf("CODEX_HOME is not writable by uid %d (mode %v)", uid, st.Mode().Perm())
		}
	}
}

// cliRootLocks is the hazard the ownership test guards against, shown on the
// real CLI without codex-launch: auth.json and CODEX_HOME belong to the CLI's
// uid, but a refresher that ran as root left auth.lock and auth.json.lock
// behind, root-owned. A CLI that takes the lock protocol (0.171.0) redeems
// its refresh token and then cannot open the lock to commit the result: the
// file keeps the spent token and the login is gone. A CLI that takes no locks
// (0.130.0) is not affected.
func cliRootLocks(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uid := cliUIDCred()
	s, gen0 := newDueCLIScenario(t, env, v, uid)
	s.writeFile("auth.lock", nil, 0o600, nil)
	s.writeFile("auth.json.lock", nil, 0o600, nil)

	turn := s.Turn(ctx, v, uid)
	rt, _ := s.FileTokens()
	spent := s.TM.PostsFor(gen0.RefreshToken) > 0
	lost := spent && rt == gen0.RefreshToken
	t.Logf("CLI %s as uid %d with root-owned lock files: exit %d, token requests %s, login lost: %v",
		v.Version, cliUID, turn.Code, s.postsSummary(), lost)
	if lost != v.Locks {
		t.Errorf("CLI %s: login lost %v, want %v (a CLI that locks cannot commit past root-owned lock files): %s", v.Version, lost, v.Locks, turn)
	}
}

// cliRootRefreshOnce: an operator's `docker exec ... codex-launch refresh
// --once` (then status, health) runs as root, without --user, in a
// CODEX_HOME that belongs to the CLI's uid. Nothing root-owned may be left
// behind (auth.json, the lock files, the status file): afterwards the CLI as
// the uid refreshes (after a 401) and commits on its own.
func cliRootRefreshOnce(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	uid := cliUIDCred()
	s, _ := newDueCLIScenario(t, env, v, uid)

	r := s.Launch(ctx, "refresh", "--once")
	if r.Code != 0 {
		t.Fatalf("codex-launch refresh --once as root: %s", r)
	}
	// The other operator commands, also as root, also write nothing root's.
	for _, cmd := range [][]string{{"status"}, {"status", "--json"}, {"health"}} {
		if r := s.Launch(ctx, cmd...); r.Code > 1 {
			t.Errorf("codex-launch %v as root: %s", cmd, r)
		}
	}
	g1, _ := s.TM.Latest(s.Account)
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if u, _, _ := cliOwnerOf(t, filepath.Join(s.Dir, e.Name())); u != cliUID {
			t.Errorf("after a root refresh --once, %s belongs to uid %d, want %d", e.Name(), u, cliUID)
		}
	}

	s.BE.Reject(g1.AccessToken)
	turn := s.Turn(ctx, v, uid)
	if turn.Code != 0 || !strings.Contains(turn.Stdout, cliBackendReply) {
		t.Fatalf("the CLI's turn as uid %d failed: %s", cliUID, turn)
	}
	g2, _ := s.TM.Latest(s.Account)
	if rt, _ := s.FileTokens(); s.tokenPosts() != 2 || rt != g2.RefreshToken {
		t.Fatalf("the CLI as uid %d did not refresh and commit after a root refresh --once: token requests %s", cliUID, s.postsSummary())
	}
	t.Logf("CLI %s as uid %d refreshed and committed after a root refresh --once: %s", v.Version, cliUID, s.postsSummary())
}
