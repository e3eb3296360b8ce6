package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hashicorp/go-hclog"
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
	if err := fixOwner(home, st, uid, gid, root, foreign, log); err != nil {
		return err
	}
	top, err := unix.Open(home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("CODEX_HOME %s: %w", home, err)
	}
	err = ownTree(top, home, uid, gid, root, foreign, log)
	unix.Close(top)
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

// fixOwner re-owns CODEX_HOME itself, through a link if it is one: a volume
// mounted behind a link is what the CLI's user must own.
func fixOwner(path string, info fs.FileInfo, uid, gid int, root bool, foreign *foreignEntries, log hclog.Logger) error {
	sys, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if !mustReown(path, int(sys.Uid), int(sys.Gid), uint64(sys.Nlink), info.Mode().IsRegular(), uid, gid, root, foreign, log) {
		return nil
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", path, uid, gid, err)
	}
	return nil
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
