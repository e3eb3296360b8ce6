package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// PrepareHome makes sure CODEX_HOME and CODEX_HOME/sessions exist and that
// everything under CODEX_HOME belongs to owner (the current user when nil),
// as start.sh's `install -d` and `chown -R` did. The CLI must be able to
// create and rewrite auth.json, auth.lock, auth.json.lock and the status file:
// one of them owned by root while the CLI runs as another user lets it redeem
// a refresh token that it then cannot commit, and the login is gone.
//
// New directories are created 0700 (their missing parents 0755, so the owner
// can reach them). Existing modes are left alone. The walk never follows a
// symbolic link (links are re-owned themselves, not their targets) and never
// re-owns a regular file with several hard links, which could be a link to a
// file outside CODEX_HOME; it warns instead. Without root nothing can be
// re-owned: entries that belong to someone else are reported as warnings.
func PrepareHome(home string, owner *User, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if home == "" {
		return errors.New("CODEX_HOME is empty")
	}
	uid, gid := os.Geteuid(), os.Getegid()
	if owner != nil {
		uid, gid = owner.UID, owner.GID
	}
	root := os.Geteuid() == 0

	for _, dir := range []string{home, filepath.Join(home, "sessions")} {
		if err := makeDir(dir); err != nil {
			return err
		}
	}
	// The top may be a link to a volume: its target is what must be owned.
	st, err := os.Stat(home)
	if err != nil {
		return fmt.Errorf("CODEX_HOME %s: %w", home, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("CODEX_HOME %s is not a directory", home)
	}
	foreign := &foreignEntries{}
	if err := fixOwner(home, st, uid, gid, root, true, foreign, log); err != nil {
		return err
	}

	err = filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("CODEX_HOME: %w", err)
		}
		if path == home {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("CODEX_HOME: %s: %w", path, err)
		}
		return fixOwner(path, info, uid, gid, root, false, foreign, log)
	})
	if err != nil {
		return err
	}
	if foreign.count > 0 {
		log.Warn("CODEX_HOME has entries of another user that cannot be re-owned without root; the CLI may fail to write them",
			"entries", foreign.count, "first", foreign.first, "want_uid", uid)
	}
	log.Debug("CODEX_HOME prepared", "dir", home, "uid", uid, "gid", gid)
	return nil
}

// makeDir creates dir 0700 with any missing parents 0755.
func makeDir(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", parent, err)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Mkdir's mode passes through the umask; 0700 has nothing a umask removes
	// from the owner, but say it explicitly for odd umasks such as 0777.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// foreignEntries counts what a non-root boot could not re-own, for one warning
// instead of one per file of a large sessions tree.
type foreignEntries struct {
	count int
	first string
}

func fixOwner(path string, info fs.FileInfo, uid, gid int, root, follow bool, foreign *foreignEntries, log hclog.Logger) error {
	sys, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(sys.Uid) == uid && int(sys.Gid) == gid {
		return nil
	}
	if !root {
		if int(sys.Uid) != uid {
			if foreign.count == 0 {
				foreign.first = path
			}
			foreign.count++
		}
		return nil
	}
	if info.Mode().IsRegular() && sys.Nlink > 1 {
		log.Warn("not re-owning a file with several hard links in CODEX_HOME", "path", path, "links", sys.Nlink)
		return nil
	}
	chown := os.Lchown
	if follow {
		chown = os.Chown
	}
	if err := chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", path, uid, gid, err)
	}
	return nil
}
