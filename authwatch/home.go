package authwatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
	"golang.org/x/sys/unix"
)

// File names inside CODEX_HOME. auth.lock and auth.json.lock are the CLI's
// (0.169.0) lock files; codex-launch takes them exactly as the CLI does.
const (
	AuthFileName     = "auth.json"
	StatusFileName   = "auth_refresh_status.json"
	refreshLockName  = "auth.lock"
	commitLockName   = "auth.json.lock"
	tempPrefix       = ".codex-launch-"
	tempSuffix       = ".tmp"
	staleTempAfter   = time.Minute
	lockPollInterval = 10 * time.Millisecond
	// DefaultLockTimeout bounds a lock wait. The CLI holds auth.lock only
	// around its own re-read and commit, and auth.json.lock only around a
	// rename, so seconds are plenty; longer means something is wedged.
	DefaultLockTimeout = 10 * time.Second
)

// ErrLockTimeout is wrapped when a CLI lock did not come within the bound.
var ErrLockTimeout = errors.New("lock wait timed out")

// ErrSuperseded: a strictly newer credential appeared while ours was being
// made; it was kept and ours dropped.
var ErrSuperseded = errors.New("a newer credential was committed meanwhile")

// Owner is the uid/gid files in CODEX_HOME must belong to (the CLI's user).
type Owner = dirhandle.Owner

// Home is a CODEX_HOME directory and the CLI's lock protocol there.
type Home struct {
	Dir string
	// Owner of every file codex-launch writes or creates here (auth.json,
	// lock files, status); nil takes the owner of the existing auth.json,
	// or keeps the process's own ids when there is none.
	Owner *Owner
	// LockTimeout bounds each lock wait; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// DeferDirSync, when set, is handed the directory fsync that makes a
	// commit's rename durable, and the commit returns without waiting for
	// it. The file's data is fsynced before the rename either way, so
	// auth.json is never torn: until the handed function has run, a crash
	// may only bring back the previous auth.json. Boot uses it for the
	// credential it seeds from a variable (which the next boot writes
	// again), so that the child need not wait for the fsync. A Home with it
	// set must never reach a Watchdog (New refuses it) or a Store that
	// refreshes: a refresh's tokens exist nowhere else, and its commit must
	// be durable on return.
	DeferDirSync func(sync func() error)
}

// MaxAuthFileSize caps a read of auth.json: far above any real one (a few
// KiB), low enough that a planted huge file cannot balloon the launcher's
// memory. A larger file is unreadable (dirhandle.ErrTooLarge).
const MaxAuthFileSize = 1 << 20

// maxStatusSize caps a read of a status file (a few hundred bytes when
// written by codex-launch).
const maxStatusSize = 64 << 10

// AuthPath is $CODEX_HOME/auth.json.
func (h Home) AuthPath() string { return filepath.Join(h.Dir, AuthFileName) }

// StatusPath is $CODEX_HOME/auth_refresh_status.json.
func (h Home) StatusPath() string { return filepath.Join(h.Dir, StatusFileName) }

func (h Home) lockTimeout() time.Duration {
	if h.LockTimeout <= 0 {
		return DefaultLockTimeout
	}
	return h.LockTimeout
}

// Open opens CODEX_HOME for one operation: every file in it is then reached
// relative to the returned directory, never through a link (package
// dirhandle). A missing CODEX_HOME returns an error for which
// errors.Is(err, os.ErrNotExist) holds.
func (h Home) Open() (*dirhandle.Dir, error) {
	d, err := dirhandle.Open(h.Dir)
	if err != nil {
		return nil, fmt.Errorf("CODEX_HOME: %w", err)
	}
	return d, nil
}

// Read reads and parses auth.json. A missing file returns an error for which
// errors.Is(err, os.ErrNotExist) holds; a malformed one returns the raw bytes
// with an error wrapping ErrMalformed. An auth.json that is not a regular
// file (a link, a FIFO, a device) or is larger than MaxAuthFileSize is never
// read: the error wraps dirhandle.ErrNotRegular or dirhandle.ErrTooLarge.
func (h Home) Read() (*AuthFile, []byte, error) {
	d, err := h.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("reading auth.json: %w", err)
	}
	defer d.Close()
	return readAuthIn(d)
}

// ReadFile reads the regular file name in CODEX_HOME, at most max bytes
// (dirhandle.Dir.ReadFile).
func (h Home) ReadFile(name string, max int64) ([]byte, error) {
	d, err := h.Open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(name, max)
}

// Lstat is fstatat of the entry name in CODEX_HOME, not following a link.
func (h Home) Lstat(name string) (unix.Stat_t, error) {
	d, err := h.Open()
	if err != nil {
		return unix.Stat_t{}, err
	}
	defer d.Close()
	return d.Lstat(name)
}

func readAuthIn(d *dirhandle.Dir) (*AuthFile, []byte, error) {
	data, err := d.ReadFile(AuthFileName, MaxAuthFileSize)
	if err != nil {
		return nil, nil, fmt.Errorf("reading auth.json: %w", err)
	}
	f, err := ParseAuthFile(data)
	if err != nil {
		return nil, data, err
	}
	return f, data, nil
}

// fileOwner decides who files we create in d belong to: Home.Owner when set
// (the CLI's user, known to the launcher: it also repairs a root-owned
// auth.json left by an earlier root process, a hazard that kills logins),
// else the current auth.json's owner (whoever the CLI runs as made it),
// else, as root, the directory's owner, else nil (the process's own ids).
// As root, a root-owned auth.json in a directory that is not root's gives
// the directory's owner: no run leaves a root file in another user's
// CODEX_HOME. Owners are read by fstat of what is in d, never through a link.
func (h Home) fileOwner(d *dirhandle.Dir) *Owner {
	if h.Owner != nil {
		return h.Owner
	}
	root := os.Geteuid() == 0
	var dirOwner *Owner
	if o, err := d.Owner(); err == nil {
		dirOwner = &o
	}
	if st, err := d.Lstat(AuthFileName); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		if !root || st.Uid != 0 || dirOwner == nil || dirOwner.UID == 0 {
			return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
		}
	}
	if root {
		return dirOwner
	}
	return nil
}

// advisoryOwner is who a status or lock file belongs to: fileOwner, else,
// with no auth.json yet, CODEX_HOME's owner, which is the CLI's user once
// boot has prepared the directory; a `refresh` run as root before the first
// login must not leave a root-owned file there. Without root a file cannot
// be given away, and these files work for us as our own: nil then, unless
// the owner is us.
func (h Home) advisoryOwner(d *dirhandle.Dir) *Owner {
	o := h.fileOwner(d)
	if o == nil {
		if do, err := d.Owner(); err == nil {
			o = &do
		}
	}
	if o != nil && os.Geteuid() != 0 && (o.UID != os.Geteuid() || o.GID != os.Getegid()) {
		return nil
	}
	return o
}

// lock is one held flock.
type lock struct{ f *os.File }

func (l *lock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// acquire takes flock(LOCK_EX) on a lock file in d, creating it (for the
// CLI's user) when missing; one left by another owner (an earlier root
// process) is handed over by descriptor. It polls LOCK_NB every 10 ms, as
// the CLI does for auth.json.lock, so the wait is bounded by the timeout and
// by ctx and can never hang the watchdog. A lock name that is not a regular
// file (a planted link, a FIFO) is refused, never followed.
func (h Home) acquire(ctx context.Context, d *dirhandle.Dir, name string, timeout time.Duration) (*lock, error) {
	owner := h.advisoryOwner(d)
	f, created, err := d.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600, owner)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	if !created {
		if err := dirhandle.Chown(f, h.fileOwner(d)); err != nil && !errors.Is(err, fs.ErrPermission) {
			// A lock file the CLI cannot open would break its commit;
			// when we cannot fix it (not root) the lock still works for us.
			f.Close()
			return nil, err
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &lock{f: f}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w: %s held by another process for more than %s", ErrLockTimeout, name, timeout)
		}
		t := time.NewTimer(lockPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// tempFile is a prepared replacement for auth.json: created (0600, O_EXCL)
// and owned right before anything irrevocable happens, so that an unwritable
// directory or a wrong owner is found before a refresh token is spent.
type tempFile struct {
	f    *os.File
	dir  *dirhandle.Dir
	name string
}

func (h Home) prepareTemp(d *dirhandle.Dir) (*tempFile, error) {
	cleanStaleTemps(d)
	f, name, err := d.CreateTemp(tempPrefix+AuthFileName+".", tempSuffix, h.fileOwner(d))
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file in CODEX_HOME: %w", err)
	}
	return &tempFile{f: f, dir: d, name: name}, nil
}

// fill writes data from the start of the temp file and cuts it to data (a
// reservation by zeros is dropped), without making it durable.
func (t *tempFile) fill(data []byte) error {
	if _, err := t.f.WriteAt(data, 0); err != nil {
		return fmt.Errorf("writing the temporary file: %w", err)
	}
	if err := t.f.Truncate(int64(len(data))); err != nil {
		return fmt.Errorf("sizing the temporary file: %w", err)
	}
	if err := t.f.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod the temporary file: %w", err)
	}
	return nil
}

func (t *tempFile) discard() {
	if t == nil {
		return
	}
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.name != "" {
		t.dir.Remove(t.name)
		t.name = ""
	}
}

// write fills the temp file and makes it durable; rename is separate so the
// caller can do it under auth.json.lock.
func (t *tempFile) write(data []byte) error {
	if err := t.fill(data); err != nil {
		return err
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("fsync the temporary file: %w", err)
	}
	if err := t.f.Close(); err != nil {
		return fmt.Errorf("closing the temporary file: %w", err)
	}
	t.f = nil
	return nil
}

// cleanStaleTemps removes temporary files of ours that a crash left behind.
// Only our own prefix, only regular files, and only old ones: a young one
// may belong to a concurrent codex-launch that is about to rename it.
func cleanStaleTemps(d *dirhandle.Dir) {
	names, err := d.Names()
	if err != nil {
		return
	}
	for _, name := range names {
		if !strings.HasPrefix(name, tempPrefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		st, err := d.Lstat(name)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || time.Since(time.Unix(st.Mtim.Unix())) < staleTempAfter {
			continue
		}
		d.Remove(name)
	}
}

// syncDir fsyncs CODEX_HOME, opened anew (the deferred sync outlives the
// operation's descriptor; fsync reaches the same directory).
func syncDir(dir string) error {
	d, err := dirhandle.Open(dir)
	if err != nil {
		return fmt.Errorf("opening CODEX_HOME to fsync it: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync CODEX_HOME: %w", err)
	}
	return nil
}

// Commit replaces auth.json with f atomically, under auth.json.lock as the
// CLI does: temp file (0600, O_EXCL, the CLI user's), fsync, rename, fsync of
// the directory. It does not take auth.lock and does not check for a newer
// credential: that is Update's job (FileStore). Use it for writes that are
// not refreshes, e.g. seeding a file under the caller's own checks.
func (h Home) Commit(ctx context.Context, f *AuthFile) error {
	d, err := h.Open()
	if err != nil {
		return err
	}
	defer d.Close()
	t, err := h.prepareTemp(d)
	if err != nil {
		return err
	}
	defer t.discard()
	_, err = h.commitTemp(ctx, d, t, f.Marshal(), false, nil)
	return err
}

// commitTemp writes data into t and renames it over auth.json under
// auth.json.lock. check, when set, runs on the freshly re-read file under
// that lock and may veto the rename (ErrSuperseded). With mustCommit (the
// data holds tokens the endpoint has already issued for a redeemed refresh
// token), an auth.json.lock that never comes does not stop the rename: the
// caller holds auth.lock, so no writer following the CLI's protocol can be
// committing, and losing the only live tokens would end the login; the same
// holds for an auth.json.lock that is not a regular file. forced reports
// that case. The caller discards t: on a failure it may keep it (rescue).
func (h Home) commitTemp(ctx context.Context, d *dirhandle.Dir, t *tempFile, data []byte, mustCommit bool, check func(cur *AuthFile, raw []byte, readErr error) error) (forced bool, err error) {
	if err := t.write(data); err != nil {
		return false, err
	}
	l, err := h.acquire(ctx, d, commitLockName, h.lockTimeout())
	if err != nil {
		// A lock file that is not one (a link or FIFO planted in its
		// place) is no writer either: it is never followed or opened.
		if !mustCommit || !errors.Is(err, ErrLockTimeout) && !errors.Is(err, dirhandle.ErrNotRegular) {
			return false, err
		}
		forced = true
	}
	defer l.release()
	if check != nil {
		cur, raw, rerr := readAuthIn(d)
		if err := check(cur, raw, rerr); err != nil {
			return forced, err
		}
	}
	if err := d.Rename(t.name, AuthFileName); err != nil {
		return forced, fmt.Errorf("renaming the temporary file over auth.json: %w", err)
	}
	t.name = "" // renamed: nothing to discard
	if h.DeferDirSync != nil {
		dir := h.Dir
		h.DeferDirSync(func() error { return syncDir(dir) })
		return forced, nil
	}
	if err := d.Sync(); err != nil {
		return forced, fmt.Errorf("fsync CODEX_HOME: %w", err)
	}
	return forced, nil
}
