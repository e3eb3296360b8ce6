package authwatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

func ownerOf(t *testing.T, path string) (int, int) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// TestRefreshKeepsOwner: running as root for a CLI that runs as another
// user, everything we write or create in CODEX_HOME belongs to that user, or
// the CLI could not commit its own refresh later (a lost login).
func TestRefreshKeepsOwner(t *testing.T) {
	testenv.RequireRoot(t)
	const uid, gid = 4321, 4322
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	if err := os.Chown(h.AuthPath(), uid, gid); err != nil {
		t.Fatal(err)
	}
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	if out, err := w.Pass(context.Background()); out != OutcomeRefreshed {
		t.Fatalf("got %v %v", out, err)
	}
	for _, name := range []string{AuthFileName, "auth.lock", "auth.json.lock", StatusFileName} {
		if u, g := ownerOf(t, filepath.Join(h.Dir, name)); u != uid || g != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", name, u, g, uid, gid)
		}
		if info, _ := os.Stat(filepath.Join(h.Dir, name)); info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", name, info.Mode())
		}
	}
}

// TestHomeOwnerForNewFiles: with no auth.json to take the owner from,
// Home.Owner decides (seeding a fresh CODEX_HOME as root); a root-owned lock
// file left by an earlier root process is handed over too.
func TestHomeOwnerForNewFiles(t *testing.T) {
	testenv.RequireRoot(t)
	const uid, gid = 4321, 4322
	h := testHome(t, nil)
	h.Owner = &Owner{UID: uid, GID: gid}
	os.WriteFile(filepath.Join(h.Dir, "auth.lock"), nil, 0o600) // root's
	c := newCred(0, time.Now().Add(time.Hour))
	f, _ := ParseAuthFile(c.file(time.Now()))
	err := NewFileStore(h).Update(context.Background(), func(context.Context, *AuthFile) (*AuthFile, error) { return f, nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{AuthFileName, "auth.lock", "auth.json.lock"} {
		if u, g := ownerOf(t, filepath.Join(h.Dir, name)); u != uid || g != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", name, u, g, uid, gid)
		}
	}
	// A root-owned auth.json (left by an earlier root process) is handed
	// to the owner on the next write.
	os.Chown(h.AuthPath(), 0, 0)
	if err := NewFileStore(h).Update(context.Background(), func(context.Context, *AuthFile) (*AuthFile, error) { return f, nil }); err != nil {
		t.Fatal(err)
	}
	if u, g := ownerOf(t, h.AuthPath()); u != uid || g != gid {
		t.Errorf("auth.json owned by %d:%d after rewrite, want %d:%d", u, g, uid, gid)
	}
}

// TestStatusOwnedLikeCodexHomeWithoutAuthJSON: a status file written as
// root before there is an auth.json (a `refresh` before the first login)
// belongs to CODEX_HOME's owner, the CLI's user, not to root.
func TestStatusOwnedLikeCodexHomeWithoutAuthJSON(t *testing.T) {
	testenv.RequireRoot(t)
	const uid, gid = 4321, 4322
	h := testHome(t, nil)
	if err := os.Chown(h.Dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := WriteStatus(h, Status{}); err != nil {
		t.Fatal(err)
	}
	if u, g := ownerOf(t, h.StatusPath()); u != uid || g != gid {
		t.Errorf("status file owned by %d:%d, want %d:%d", u, g, uid, gid)
	}
	if info, _ := os.Stat(h.StatusPath()); info.Mode().Perm() != 0o600 {
		t.Errorf("status file mode %v", info.Mode())
	}
}

// TestTempPreparedBeforePost: the replacement file is created (and given
// its owner) before fn, that is before the POST, so a CODEX_HOME we cannot
// write fails the pass before the refresh token is spent.
func TestTempPreparedBeforePost(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	ran := false
	err := NewFileStore(h).Update(context.Background(), func(context.Context, *AuthFile) (*AuthFile, error) {
		temps, _ := filepath.Glob(filepath.Join(h.Dir, tempPrefix+"*"))
		if len(temps) != 1 {
			t.Errorf("temp files when fn runs: %v", temps)
		}
		ran = true
		return nil, nil
	})
	if err != nil || !ran {
		t.Fatalf("update: %v", err)
	}
	if temps, _ := filepath.Glob(filepath.Join(h.Dir, tempPrefix+"*")); len(temps) != 0 {
		t.Fatalf("temp file left after a no-change update: %v", temps)
	}
}

// TestMissingDirFailsBeforeFn: Update on a missing CODEX_HOME never runs fn.
func TestMissingDirFailsBeforeFn(t *testing.T) {
	h := Home{Dir: filepath.Join(t.TempDir(), "gone")}
	err := NewFileStore(h).Update(context.Background(), func(context.Context, *AuthFile) (*AuthFile, error) {
		t.Fatal("fn ran")
		return nil, nil
	})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}
