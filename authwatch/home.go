package authwatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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
type Owner struct{ UID, GID int }

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

// Read reads and parses auth.json. A missing file returns an error for which
// errors.Is(err, os.ErrNotExist) holds; a malformed one returns the raw bytes
// with an error wrapping ErrMalformed.
func (h Home) Read() (*AuthFile, []byte, error) {
	data, err := os.ReadFile(h.AuthPath())
	if err != nil {
		return nil, nil, fmt.Errorf("reading auth.json: %w", err)
	}
	f, err := ParseAuthFile(data)
	if err != nil {
		return nil, data, err
	}
	return f, data, nil
}

// fileOwner decides who files we create belong to: Home.Owner when set (the
// CLI's user, known to the launcher: it also repairs a root-owned auth.json
// left by an earlier root process, a hazard that kills logins), else the
// current auth.json's owner (whoever the CLI runs as made it), else nil (the
// process's own ids).
func (h Home) fileOwner() *Owner {
	if h.Owner != nil {
		return h.Owner
	}
	var st unix.Stat_t
	if err := unix.Stat(h.AuthPath(), &st); err == nil {
		return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return nil
}

// advisoryOwner is who a status file belongs to: fileOwner, else, with no
// auth.json yet, CODEX_HOME's owner, which is the CLI's user once boot has
// prepared the directory; a `refresh` run as root before the first login
// must not leave a root-owned file there. fileOwner itself stops short of
// the directory: auth.json and the lock files must get their owner (one that
// cannot be given fails the write), so a process that is not root, writing
// into a directory it does not own, would fail where it now succeeds.
func (h Home) advisoryOwner() *Owner {
	if o := h.fileOwner(); o != nil {
		return o
	}
	var st unix.Stat_t
	if err := unix.Stat(h.Dir, &st); err == nil {
		return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return nil
}

// fixOwner makes an open file belong to o. Failing to change an owner that is
// already right is no failure; failing to hand a file to another user is.
func fixOwner(f *os.File, o *Owner) error {
	if o == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", filepath.Base(f.Name()), err)
	}
	if int(st.Uid) == o.UID && int(st.Gid) == o.GID {
		return nil
	}
	if err := f.Chown(o.UID, o.GID); err != nil {
		return fmt.Errorf("giving %s to uid %d gid %d: %w", filepath.Base(f.Name()), o.UID, o.GID, err)
	}
	return nil
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

// acquire takes flock(LOCK_EX) on a lock file in CODEX_HOME, creating it (for
// the CLI's user) when missing. It polls LOCK_NB every 10 ms, as the CLI does
// for auth.json.lock, so the wait is bounded by the timeout and by ctx and can
// never hang the watchdog.
func (h Home) acquire(ctx context.Context, name string, timeout time.Duration) (*lock, error) {
	path := filepath.Join(h.Dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	if err := fixOwner(f, h.fileOwner()); err != nil && !errors.Is(err, fs.ErrPermission) {
		// A lock file the CLI cannot open would break its commit;
		// when we cannot fix it (not root) the lock still works for us.
		f.Close()
		return nil, err
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
	path string
}

func (h Home) prepareTemp() (*tempFile, error) {
	h.cleanStaleTemps()
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("naming the temporary file: %w", err)
	}
	path := filepath.Join(h.Dir, tempPrefix+AuthFileName+"."+hex.EncodeToString(rnd[:])+tempSuffix)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file in CODEX_HOME: %w", err)
	}
	if err := fixOwner(f, h.fileOwner()); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &tempFile{f: f, path: path}, nil
}

func (t *tempFile) discard() {
	if t == nil {
		return
	}
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if t.path != "" {
		os.Remove(t.path)
		t.path = ""
	}
}

// write fills the temp file and makes it durable; rename is separate so the
// caller can do it under auth.json.lock.
func (t *tempFile) write(data []byte) error {
	if _, err := t.f.Write(data); err != nil {
		return fmt.Errorf("writing the temporary file: %w", err)
	}
	if err := t.f.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod the temporary file: %w", err)
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
// Only our own prefix, and only old ones: a young one may belong to a
// concurrent codex-launch that is about to rename it.
func (h Home) cleanStaleTemps() {
	entries, err := os.ReadDir(h.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, tempPrefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < staleTempAfter {
			continue
		}
		os.Remove(filepath.Join(h.Dir, name))
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
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
	t, err := h.prepareTemp()
	if err != nil {
		return err
	}
	_, err = h.commitTemp(ctx, t, f.Marshal(), false, nil)
	return err
}

// commitTemp writes data into t and renames it over auth.json under
// auth.json.lock. check, when set, runs on the freshly re-read file under
// that lock and may veto the rename (ErrSuperseded). With mustCommit (the
// data holds tokens the endpoint has already issued for a redeemed refresh
// token), an auth.json.lock that never comes does not stop the rename: the
// caller holds auth.lock, so no writer following the CLI's protocol can be
// committing, and losing the only live tokens would end the login. forced
// reports that case.
func (h Home) commitTemp(ctx context.Context, t *tempFile, data []byte, mustCommit bool, check func(cur *AuthFile, raw []byte, readErr error) error) (forced bool, err error) {
	defer t.discard()
	if err := t.write(data); err != nil {
		return false, err
	}
	l, err := h.acquire(ctx, commitLockName, h.lockTimeout())
	if err != nil {
		if !mustCommit || !errors.Is(err, ErrLockTimeout) {
			return false, err
		}
		forced = true
	}
	defer l.release()
	if check != nil {
		cur, raw, rerr := h.Read()
		if err := check(cur, raw, rerr); err != nil {
			return forced, err
		}
	}
	if err := os.Rename(t.path, h.AuthPath()); err != nil {
		return forced, fmt.Errorf("renaming the temporary file over auth.json: %w", err)
	}
	t.path = "" // renamed: nothing to discard
	if h.DeferDirSync != nil {
		dir := h.Dir
		h.DeferDirSync(func() error { return syncDir(dir) })
		return forced, nil
	}
	return forced, syncDir(h.Dir)
}
