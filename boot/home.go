package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
	"golang.org/x/sys/unix"
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

	// CODEX_HOME is opened once and everything below is reached from it
	// (package dirhandle): a link on the way is followed only when root made
	// it where only root can change it (an image's link to a volume, whose
	// target is then what is owned); one the agent could have planted is
	// refused, so nothing outside CODEX_HOME is ever created or re-owned.
	d, err := dirhandle.MakeAll(home, 0o700, nil)
	if err != nil {
		return fmt.Errorf("CODEX_HOME %s: %w", home, err)
	}
	defer d.Close()
	if sessions, err := d.Mkdir("sessions", 0o700, nil); err != nil {
		// The CLI makes it when it needs it; what is there (a link, a
		// file) is not ours to replace or follow.
		log.Warn("CODEX_HOME/sessions could not be made; left as it is", "error", err)
	} else {
		sessions.Close()
	}
	st, err := d.Stat()
	if err != nil {
		return fmt.Errorf("CODEX_HOME %s: %w", home, err)
	}
	foreign := &foreignEntries{}
	if mustReown(home, int(st.Uid), int(st.Gid), uint64(st.Nlink), false, uid, gid, root, foreign, log) {
		if err := d.Chown(dirhandle.Owner{UID: uid, GID: gid}); err != nil {
			return err
		}
	}
	if err := ownTree(d.Fd(), home, uid, gid, root, foreign, log); err != nil {
		return err
	}
	if foreign.count > 0 {
		log.Warn("CODEX_HOME has entries of another user that cannot be re-owned without root; the CLI may fail to write them",
			"entries", foreign.count, "first", foreign.first, "want_uid", uid)
	}
	log.Debug("CODEX_HOME prepared", "dir", home, "uid", uid, "gid", gid)
	return nil
}

// foreignEntries counts what a non-root boot could not re-own, for one warning
// instead of one per file of a large sessions tree.
type foreignEntries struct {
	count int
	first string
}

// mustReown decides whether an entry owned by fileUID:fileGID is re-owned to
// uid:gid, counting what a non-root boot cannot fix.
func mustReown(path string, fileUID, fileGID int, nlink uint64, regular bool, uid, gid int, root bool, foreign *foreignEntries, log hclog.Logger) bool {
	if fileUID == uid && fileGID == gid {
		return false
	}
	if !root {
		if fileUID != uid {
			if foreign.count == 0 {
				foreign.first = path
			}
			foreign.count++
		}
		return false
	}
	if regular && nlink > 1 {
		log.Warn("not re-owning a file with several hard links in CODEX_HOME", "path", path, "links", nlink)
		return false
	}
	return true
}

// ownTree re-owns everything below the open directory dir (named path, for
// messages), relative to directory descriptors opened with O_NOFOLLOW: as root
// in a tree the user controls, a path resolved again at chown time could have
// had a directory swapped for a symbolic link to anywhere (/etc) meanwhile.
func ownTree(dir int, path string, uid, gid int, root bool, foreign *foreignEntries, log hclog.Logger) error {
	names, err := readDirNames(dir, path)
	if err != nil {
		return err
	}
	for _, name := range names {
		child := filepath.Join(path, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed meanwhile
			}
			return fmt.Errorf("CODEX_HOME: %s: %w", child, err)
		}
		regular, isDir := st.Mode&unix.S_IFMT == unix.S_IFREG, st.Mode&unix.S_IFMT == unix.S_IFDIR
		if mustReown(child, int(st.Uid), int(st.Gid), uint64(st.Nlink), regular, uid, gid, root, foreign, log) {
			if err := unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("chown %s to %d:%d: %w", child, uid, gid, err)
			}
		}
		if !isDir {
			continue
		}
		sub, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				continue // removed or swapped for a link meanwhile: not ours to follow
			}
			return fmt.Errorf("CODEX_HOME: %s: %w", child, err)
		}
		err = ownTree(sub, child, uid, gid, root, foreign, log)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists the open directory dir without closing it.
func readDirNames(dir int, path string) ([]string, error) {
	dup, err := unix.Dup(dir)
	if err != nil {
		return nil, fmt.Errorf("CODEX_HOME: %s: %w", path, err)
	}
	f := os.NewFile(uintptr(dup), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("CODEX_HOME: %s: %w", path, err)
	}
	return names, nil
}
