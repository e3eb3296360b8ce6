package boot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

func assertOwner(t *testing.T, path string, uid, gid int) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if int(sys.Uid) != uid || int(sys.Gid) != gid {
		t.Errorf("%s belongs to %d:%d, want %d:%d", path, sys.Uid, sys.Gid, uid, gid)
	}
}

func TestPrepareHomeCreates(t *testing.T) {
	home := filepath.Join(t.TempDir(), "deep", "er", ".codex")
	if err := PrepareHome(home, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{home, filepath.Join(home, "sessions")} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a 0700 directory", d, st.Mode())
		}
	}
	if st, _ := os.Stat(filepath.Dir(home)); st.Mode().Perm() != 0o755 {
		t.Errorf("created parent mode %v, want 0755", st.Mode().Perm())
	}
	// Existing directories keep their mode.
	if err := os.Chmod(home, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := PrepareHome(home, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(home); st.Mode().Perm() != 0o750 {
		t.Errorf("existing mode changed to %v", st.Mode().Perm())
	}
}

func TestPrepareHomeNotADirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := PrepareHome(f, nil, nil); err == nil || !strings.Contains(err.Error(), f) {
		t.Errorf("err = %v, want one naming %s", err, f)
	}
	if err := PrepareHome("", nil, nil); err == nil {
		t.Error("empty CODEX_HOME accepted")
	}
}

func TestPrepareHomeOwnership(t *testing.T) {
	testenv.RequireRoot(t)
	home := filepath.Join(t.TempDir(), ".codex")
	if err := os.MkdirAll(filepath.Join(home, "sessions", "2026"), 0o700); err != nil {
		t.Fatal(err)
	}
	files := []string{"auth.json", "auth.lock", "auth.json.lock", "auth_refresh_status.json", "config.toml", "sessions/2026/rollout.jsonl"}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(home, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	// A link to a directory is re-owned itself; nothing is walked through it.
	outsideDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(outsideDir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outsideDir, filepath.Join(home, "dirlink")); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(t.TempDir(), "hard")
	if err := os.WriteFile(hard, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(hard, filepath.Join(home, "hardlink")); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	owner := &User{UID: 4321, GID: 4322}
	if err := PrepareHome(home, owner, testLogger(&logs)); err != nil {
		t.Fatal(err)
	}
	for _, p := range append(files, ".", "sessions", "sessions/2026", "link", "dirlink") {
		assertOwner(t, filepath.Join(home, p), 4321, 4322)
	}
	assertOwner(t, outside, 0, 0) // the link, not its target
	assertOwner(t, outsideDir, 0, 0)
	assertOwner(t, filepath.Join(outsideDir, "f"), 0, 0)
	assertOwner(t, hard, 0, 0)
	if !strings.Contains(logs.String(), "hard links") {
		t.Errorf("no warning about the hard link:\n%s", logs.String())
	}
}

func TestPrepareHomeWithoutRootWarnsOnce(t *testing.T) {
	if os.Geteuid() == 0 {
		// Run the check as an unprivileged user, in a child.
		testPrepareHomeAsNobody(t)
		return
	}
	home := t.TempDir()
	var logs bytes.Buffer
	// Owner root: every entry belongs to "another user" from our point of view.
	if err := PrepareHome(home, &User{UID: 0, GID: 0}, testLogger(&logs)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "[WARN]"); n != 1 || !strings.Contains(logs.String(), "entries=2") {
		t.Errorf("want one warning counting 2 entries:\n%s", logs.String())
	}
}
