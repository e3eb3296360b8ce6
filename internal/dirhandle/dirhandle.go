// Package dirhandle holds a directory that another, less trusted user may
// control (CODEX_HOME, the env directory), opened once, and reaches the
// entries in it relative to that descriptor without ever following a link.
//
// The contract, for a process that may run as root:
//   - The directory is opened by walking its path one component at a time
//     with O_NOFOLLOW. A symbolic link on the way is followed only when the
//     link and the directory holding it belong to root (or to the process's
//     own user): the image or the operator put it there. A link anyone else
//     could have planted is refused with ErrUntrustedLink.
//   - An entry is named by one path component and opened with O_NOFOLLOW and
//     O_NONBLOCK; its type is judged by fstat of what was opened. Only
//     regular files are read or written: a link, FIFO, device, socket or
//     directory is refused with an error naming the path and the type
//     (ErrNotRegular), and nothing can block the caller.
//   - Reads are bounded: past the caller's cap a file is ErrTooLarge.
//   - Files are created O_EXCL, and given to their owner by descriptor
//     (fchown), never by name; a file with several hard links is never
//     re-owned, since a link could name a file outside the directory.
package dirhandle

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped when an entry exists but is not a regular file
// (or, for OpenDir, not a directory).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when a file is larger than the read's cap.
var ErrTooLarge = errors.New("file too large")

// ErrUntrustedLink is wrapped when a path holds a symbolic link that someone
// other than root (or the process's own user) could have planted.
var ErrUntrustedLink = errors.New("symbolic link not owned by root in a root-owned directory")

// Owner is a uid/gid pair files are given to.
type Owner struct{ UID, GID int }

// Dir is an open directory. Its methods take single path components.
type Dir struct {
	fd   int
	path string
}

const maxLinks = 40

// Open opens the directory at path under the link rule of the package doc.
func Open(path string) (*Dir, error) {
	return walk(path, nil)
}

// MakeAll opens the directory at path, creating what is missing: parents
// 0755, the last component with mode last. Created directories are made by
// descriptor (mkdirat) and given to owner when it is set (fchown of what was
// created); existing ones are left as they are.
func MakeAll(path string, last os.FileMode, owner *Owner) (*Dir, error) {
	return walk(path, &makeSpec{last: last, owner: owner})
}

type makeSpec struct {
	last  os.FileMode
	owner *Owner
}

func walk(path string, mk *makeSpec) (*Dir, error) {
	if path == "" {
		return nil, errors.New("empty directory path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /: %w", err)
	}
	cur := "/"
	todo := splitPath(abs)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			// Lexically cleaned paths only keep ".." at the root or
			// after a followed link: resolve it against what is open.
			next, err := unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				return nil, fmt.Errorf("%s: resolving .. in %s: %w", path, cur, err)
			}
			fd, cur = next, filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && mk != nil {
			mode := uint32(0o755)
			if len(todo) == 0 {
				mode = uint32(mk.last.Perm())
			}
			if err := mkdirOwned(fd, name, next, mode, mk.owner); err != nil {
				unix.Close(fd)
				return nil, err
			}
			err = unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w", next, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if err := trustLink(fd, cur, next, &st); err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			links++
			if links > maxLinks {
				unix.Close(fd)
				return nil, fmt.Errorf("%s: too many levels of symbolic links", path)
			}
			target, err := readlinkat(fd, name)
			if err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("%s: reading link %s: %w", path, next, err)
			}
			if filepath.IsAbs(target) {
				unix.Close(fd)
				if fd, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
					return nil, fmt.Errorf("opening /: %w", err)
				}
				cur = "/"
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w: %s is a %s", path, ErrNotRegular, next, TypeName(st.Mode))
		}
		nfd, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return nil, fmt.Errorf("%s: %s was replaced while it was opened: %w", path, next, err)
			}
			return nil, fmt.Errorf("%s: %w", next, err)
		}
		fd, cur = nfd, next
	}
	// The walk holds O_PATH descriptors; the directory itself is opened
	// for reading (listing, fsync, fchown) through the last of them.
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abs, err)
	}
	return &Dir{fd: dfd, path: abs}, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// trusted reports whether uid may have made a link this process follows.
func trusted(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// trustLink allows following the link st (named next, in the directory fd
// named cur) only when the link and its directory belong to a trusted user
// and nobody else may replace entries in that directory.
func trustLink(fd int, cur, next string, st *unix.Stat_t) error {
	var dst unix.Stat_t
	if err := unix.Fstat(fd, &dst); err != nil {
		return fmt.Errorf("stat %s: %w", cur, err)
	}
	othersWrite := dst.Mode&0o022 != 0 && dst.Mode&unix.S_ISVTX == 0
	if !trusted(st.Uid) || !trusted(dst.Uid) || othersWrite {
		return fmt.Errorf("%w: %s (link owner uid %d, directory %s owner uid %d)", ErrUntrustedLink, next, st.Uid, cur, dst.Uid)
	}
	return nil
}

func readlinkat(fd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, name, buf)
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", errors.New("link target too long")
	}
	return string(buf[:n]), nil
}

func mkdirOwned(fd int, name, path string, mode uint32, owner *Owner) error {
	if err := unix.Mkdirat(fd, name, mode); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil // made meanwhile: judged like any existing entry
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	d, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer unix.Close(d)
	// Mkdir's mode passes through the umask; set it as asked.
	if err := unix.Fchmod(d, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if owner != nil {
		if err := unix.Fchown(d, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", path, owner.UID, owner.GID, err)
		}
	}
	return nil
}

// Path is the directory's absolute path as given, for messages.
func (d *Dir) Path() string { return d.path }

// Fd is the directory's descriptor, valid until Close.
func (d *Dir) Fd() int { return d.fd }

// Close releases the directory.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// Join names an entry for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// Stat is fstat of the directory itself.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return st, fmt.Errorf("stat %s: %w", d.path, err)
	}
	return st, nil
}

// Owner is the directory's uid and gid.
func (d *Dir) Owner() (Owner, error) {
	st, err := d.Stat()
	if err != nil {
		return Owner{}, err
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, nil
}

// Lstat is fstatat of an entry, not following a link. A missing entry
// returns an error for which errors.Is(err, fs.ErrNotExist) holds.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, err
	}
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &fs.PathError{Op: "stat", Path: d.Join(name), Err: err}
	}
	return st, nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q is not a file name", name)
	}
	return nil
}

// TypeName names a file type for messages.
func TypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

func notRegular(path string, mode uint32) error {
	return fmt.Errorf("%s: %w: it is a %s", path, ErrNotRegular, TypeName(mode))
}

// OpenFile opens the regular file name with flag (os.O_* values; O_NOFOLLOW,
// O_NONBLOCK and O_CLOEXEC are always added). An entry that is not a regular
// file is refused before it is opened and again by fstat of what was opened,
// with ErrNotRegular; a link is never followed. With O_CREATE, a file this
// call created is given to owner (when set) by descriptor; created reports
// it. On a file that already existed the owner is left alone: see Chown.
func (d *Dir) OpenFile(name string, flag int, perm os.FileMode, owner *Owner) (f *os.File, created bool, err error) {
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	path := d.Join(name)
	var pre unix.Stat_t
	exists := unix.Fstatat(d.fd, name, &pre, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists && pre.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false, notRegular(path, pre.Mode)
	}
	if exists && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0 {
		return nil, false, &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	if flag&os.O_CREATE != 0 && !exists {
		// Create exclusively, so that "created" is certain and only
		// what this call made is handed to owner.
		fd, err := unix.Openat(d.fd, name, flag|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err == nil {
			f := os.NewFile(uintptr(fd), path)
			if err := fixRegular(f, path); err != nil {
				f.Close()
				return nil, false, err
			}
			if owner != nil {
				if err := unix.Fchown(fd, owner.UID, owner.GID); err != nil {
					f.Close()
					unix.Unlinkat(d.fd, name, 0)
					return nil, false, fmt.Errorf("giving %s to uid %d gid %d: %w", path, owner.UID, owner.GID, err)
				}
			}
			return f, true, nil
		}
		if !errors.Is(err, unix.EEXIST) || flag&os.O_EXCL != 0 {
			return nil, false, openErr(path, err, "open")
		}
		// Made meanwhile: open what is there, without creating.
	}
	fd, err := unix.Openat(d.fd, name, flag&^(os.O_CREATE|os.O_EXCL)|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, openErr(path, err, "open")
	}
	f = os.NewFile(uintptr(fd), path)
	if err := fixRegular(f, path); err != nil {
		f.Close()
		return nil, false, err
	}
	return f, false, nil
}

// fixRegular checks that f is a regular file.
func fixRegular(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return notRegular(path, st.Mode)
	}
	return nil
}

func openErr(path string, err error, op string) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s: %w: it is a symbolic link (not followed)", path, ErrNotRegular)
	case errors.Is(err, unix.ENXIO):
		// O_WRONLY|O_NONBLOCK on a FIFO without a reader.
		return fmt.Errorf("%s: %w: it is a FIFO", path, ErrNotRegular)
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// ReadFile reads the regular file name, at most max bytes; a larger file is
// refused with ErrTooLarge and nothing of it is kept. A missing file returns
// an error for which errors.Is(err, fs.ErrNotExist) holds.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	f, _, err := d.OpenFile(name, os.O_RDONLY, 0, nil)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadBounded(f, max)
}

// StatLinked is fstatat of the entry name, following a link.
func (d *Dir) StatLinked(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, err
	}
	if err := unix.Fstatat(d.fd, name, &st, 0); err != nil {
		return st, &fs.PathError{Op: "stat", Path: d.Join(name), Err: err}
	}
	return st, nil
}

// ReadLinkedFile is ReadFile that follows a link at name: only for a
// directory its owner fills and no one else may change (the operator's
// env directory, where a Kubernetes Secret volume puts links into a hidden
// directory). What it reaches must still be a regular file (ErrNotRegular,
// checked before opening and by fstat after) of at most max bytes
// (ErrTooLarge), opened without blocking.
func (d *Dir) ReadLinkedFile(name string, max int64) ([]byte, error) {
	st, err := d.StatLinked(name)
	if err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, notRegular(d.Join(name), st.Mode)
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(d.Join(name), err, "open")
	}
	f := os.NewFile(uintptr(fd), d.Join(name))
	defer f.Close()
	if err := fixRegular(f, d.Join(name)); err != nil {
		return nil, err
	}
	return ReadBounded(f, max)
}

// ReadBounded reads the open file f, at most max bytes (ErrTooLarge past it).
func ReadBounded(f *os.File, max int64) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Size > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, the limit is %d", f.Name(), ErrTooLarge, st.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", f.Name(), ErrTooLarge, max)
	}
	return data, nil
}

// Chown gives the open regular file f to o by descriptor. An owner that is
// already right is no change (and no failure without root). A file with
// several hard links is refused: one of them may be outside the directory.
func Chown(f *os.File, o *Owner) error {
	if o == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if int(st.Uid) == o.UID && int(st.Gid) == o.GID {
		return nil
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
		return fmt.Errorf("not giving %s to uid %d: it has %d hard links, one may be outside the directory", f.Name(), o.UID, st.Nlink)
	}
	if err := f.Chown(o.UID, o.GID); err != nil {
		return fmt.Errorf("giving %s to uid %d gid %d: %w", f.Name(), o.UID, o.GID, err)
	}
	return nil
}

// CreateTemp creates a new regular file named prefix+random+suffix, 0600,
// given to owner when set; it returns the file and its name in d.
func (d *Dir) CreateTemp(prefix, suffix string, owner *Owner) (*os.File, string, error) {
	for i := 0; ; i++ {
		name := prefix + randomName() + suffix
		f, _, err := d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600, owner)
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return nil, "", fmt.Errorf("creating a temporary file in %s: %w", d.path, err)
		}
	}
}

// Rename renames the entry from to to within d; a link at to is replaced,
// never followed.
func (d *Dir) Rename(from, to string) error {
	if err := checkName(from); err != nil {
		return err
	}
	if err := checkName(to); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd, from, d.fd, to); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", d.Join(from), to, err)
	}
	return nil
}

// Remove unlinks the non-directory entry name.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// Names lists the directory's entries.
func (d *Dir) Names() ([]string, error) {
	dup, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.path, err)
	}
	f := os.NewFile(uintptr(dup), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", d.path, err)
	}
	return names, nil
}

// Sync fsyncs the directory (makes a rename in it durable).
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return fmt.Errorf("fsync %s: %w", d.path, err)
	}
	return nil
}

// Chown gives the directory itself to o by descriptor.
func (d *Dir) Chown(o Owner) error {
	if err := unix.Fchown(d.fd, o.UID, o.GID); err != nil {
		return fmt.Errorf("chown %s to %d:%d: %w", d.path, o.UID, o.GID, err)
	}
	return nil
}

// Resolve returns the directory and name where the entry name really is:
// d (reopened) and name itself unless name is a symbolic link; for a link
// that root (or this process's user) made in a directory only such a user
// can change, the directory holding its target, opened under the rule of
// Open, and the target's last component. Any other link is refused with
// ErrUntrustedLink. The caller closes the returned Dir.
func (d *Dir) Resolve(name string) (*Dir, string, error) {
	st, err := d.Lstat(name)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", fmt.Errorf("reopening %s: %w", d.path, err)
		}
		return &Dir{fd: fd, path: d.path}, name, nil
	}
	if err := trustLink(d.fd, d.path, d.Join(name), &st); err != nil {
		return nil, "", err
	}
	target, err := readlinkat(d.fd, name)
	if err != nil {
		return nil, "", fmt.Errorf("reading link %s: %w", d.Join(name), err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(d.path, target)
	}
	base := filepath.Base(target)
	if checkName(base) != nil {
		return nil, "", fmt.Errorf("%s: link target %s is not a file", d.Join(name), target)
	}
	td, err := Open(filepath.Dir(target))
	if err != nil {
		return nil, "", err
	}
	return td, base, nil
}

// OpenDir opens the subdirectory name (never through a link).
func (d *Dir) OpenDir(name string) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			var st unix.Stat_t
			if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				return nil, fmt.Errorf("%s: not a directory: it is a %s", d.Join(name), TypeName(st.Mode))
			}
		}
		return nil, &fs.PathError{Op: "open", Path: d.Join(name), Err: err}
	}
	return &Dir{fd: fd, path: d.Join(name)}, nil
}

// Mkdir creates the subdirectory name with mode (exact, not through the
// umask), given to owner when set, unless it exists; then opens it.
func (d *Dir) Mkdir(name string, mode os.FileMode, owner *Owner) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := mkdirOwned(d.fd, name, d.Join(name), uint32(mode.Perm()), owner); err != nil {
		return nil, err
	}
	return d.OpenDir(name)
}

// WriteFile replaces name atomically with data: a new temporary file (prefix
// tempPrefix, 0600 then mode), given to owner when set, written, fsynced when
// durable, renamed over name. A link at name is replaced, never followed.
// The rename is not made durable here: the caller fsyncs d (Sync) when it
// must survive a crash.
func (d *Dir) WriteFile(name, tempPrefix string, data []byte, mode os.FileMode, owner *Owner, durable bool) error {
	f, tmp, err := d.CreateTemp(tempPrefix+name+".", ".tmp", owner)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode.Perm())
	}
	if werr == nil && durable {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		d.Remove(tmp)
		return fmt.Errorf("writing %s: %w", d.Join(name), werr)
	}
	if err := d.Rename(tmp, name); err != nil {
		d.Remove(tmp)
		return err
	}
	return nil
}

func randomName() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}
