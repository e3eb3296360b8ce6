package authwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
)

// Store is the credential's home. The file store (a CODEX_HOME) is the
// default; the PostgreSQL fleet store implements it too.
type Store interface {
	// Load returns the current credential; (nil, nil) when there is none.
	Load(ctx context.Context) (*AuthFile, error)
	// Update runs fn with the freshly re-read credential while holding the
	// store's exclusive refresh lock (the CLI's auth.lock for a file; a
	// database lock for a shared store). fn returns the replacement, or nil
	// for no change. A POST made inside fn is single-flight. The replacement
	// is committed before the lock is released, unless a strictly newer
	// credential appeared meanwhile (then ErrSuperseded).
	Update(ctx context.Context, fn func(ctx context.Context, cur *AuthFile) (*AuthFile, error)) error
}

// FileStore is the Store of one CODEX_HOME, following the CLI's lock
// protocol.
type FileStore struct {
	Home Home
	// Logger receives the rare warnings Update cannot return as errors;
	// nil discards them.
	Logger hclog.Logger
}

// NewFileStore returns the file Store of h.
func NewFileStore(h Home) Store { return &FileStore{Home: h} }

// Load reads auth.json without locks: a reader never sees a torn file
// because every writer renames.
func (s *FileStore) Load(ctx context.Context) (*AuthFile, error) {
	f, _, err := s.read()
	return f, err
}

// read is Load that also returns the bytes the credential came from, for
// the watchdog's loop, which waits on that very version of auth.json: nil
// when there is no file or it could not be read; a malformed file still
// has its bytes.
func (s *FileStore) read() (*AuthFile, []byte, error) {
	f, raw, err := s.Home.Read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	return f, raw, err
}

// readIn is read in the open CODEX_HOME d.
func readIn(d *dirhandle.Dir) (*AuthFile, []byte, error) {
	f, raw, err := readAuthIn(d)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	return f, raw, err
}

// Update holds auth.lock across re-read → fn (the POST) → commit, so the
// CLI's own commit waits for ours and then adopts our file (it re-reads and
// sees the account match). auth.json.lock is taken only around the rename.
// The temporary file is prepared before fn runs, so a directory the CLI's
// user cannot write, or an owner that cannot be kept, fails before a refresh
// token is spent. Once fn has returned a replacement (its POST redeemed a
// token), the commit no longer listens to ctx: a redeemed token that is not
// written is a lost login. What it writes is exactly the replacement's
// Marshal(): the watchdog's loop takes that for the version it left behind
// (committedVersion).
func (s *FileStore) Update(ctx context.Context, fn func(ctx context.Context, cur *AuthFile) (*AuthFile, error)) error {
	h := s.Home
	d, err := h.Open()
	if err != nil {
		return err
	}
	defer d.Close()
	l, err := h.acquire(ctx, d, refreshLockName, h.lockTimeout())
	if err != nil {
		return err
	}
	defer l.release()

	cur, base, err := readIn(d)
	if err != nil {
		return err
	}
	if cur, base, err = s.adoptRescue(d, cur, base); err != nil {
		return err
	}
	t, err := s.prepareCommit(d)
	if err != nil {
		return err
	}
	defer t.discard()

	next, err := fn(ctx, cur)
	if err != nil || next == nil {
		return err
	}
	return s.commit(context.WithoutCancel(ctx), d, t, next, base, cur, true)
}

// prepareCommit shows, before fn may spend a refresh token, that its
// answer can be committed: the temporary file created (the directory is
// writable, the owner can be kept), its space reserved, auth.json
// replaceable. A failure wraps ErrCannotCommit, or is the creation's.
func (s *FileStore) prepareCommit(d *dirhandle.Dir) (*tempFile, error) {
	t, err := s.Home.prepareTemp(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCannotCommit, err)
	}
	if err := t.reserve(); err != nil {
		t.discard()
		return nil, err
	}
	if err := checkReplaceable(d); err != nil {
		t.discard()
		return nil, err
	}
	return t, nil
}

// commit renames next (in t) over auth.json unless a newer credential than
// cur (read as base) is there. A redeemed answer is never dropped: when the
// commit fails it is kept in RescueFileName and returned in an
// *UnwrittenError.
//
// With stash (an answer the endpoint has just given), the answer is first
// written and renamed to RescueFileName, before its fsync, the lock and the
// re-read: from then on a process killed mid-commit leaves it where the
// next pass adopts it: a SIGKILL loses a redeemed token only while the
// answer's bytes are being written. auth.json itself
// is still replaced only by the fsynced file (the rename of the rescue file
// over it); a power loss before that may leave a torn rescue file, which
// does not parse and is removed, and auth.json as it was.
func (s *FileStore) commit(ctx context.Context, d *dirhandle.Dir, t *tempFile, next *AuthFile, base []byte, cur *AuthFile, stash bool) error {
	h := s.Home
	data := next.Marshal()
	if stash && t.fill(data) == nil && d.Rename(t.name, RescueFileName) == nil {
		t.name = RescueFileName
	}
	forced, err := h.commitTemp(ctx, d, t, data, true, func(disk *AuthFile, raw []byte, readErr error) error {
		return checkNotSuperseded(base, cur, disk, raw, readErr)
	})
	if forced && s.Logger != nil {
		s.Logger.Error("auth.json.lock could not be taken (held past the lock timeout, or not a regular file) while auth.lock was ours; renamed without it to keep the new credential",
			"lock_timeout", h.lockTimeout())
	}
	if err != nil && !errors.Is(err, ErrSuperseded) {
		return h.rescue(d, t, next, data, err)
	}
	return err
}

// adoptRescue commits the answer an earlier refresh could not write
// (RescueFileName), under auth.lock as every commit, when it may replace
// cur (ReplaceOnRescue); one that may not is removed. It returns the credential
// now on disk and its bytes. While the rescue cannot be committed it stays,
// and the error (an *UnwrittenError) keeps the spent token in auth.json
// from being sent.
func (s *FileStore) adoptRescue(d *dirhandle.Dir, cur *AuthFile, base []byte) (*AuthFile, []byte, error) {
	r, err := readRescue(d)
	if r == nil && err == nil {
		return cur, base, nil
	}
	if err != nil {
		s.warn("a rescued credential cannot be read; removed it", "error", errText(err))
		_ = d.Remove(RescueFileName)
		return cur, base, nil
	}
	if v := MayReplace(r, cur, ReplaceOnRescue); !v.Replace {
		s.warn("a rescued credential was not adopted; removed it", "reason", string(v.Reason), "account_id", r.AccountID())
		_ = d.Remove(RescueFileName)
		return cur, base, nil
	}
	t, err := s.prepareCommit(d)
	if err == nil {
		defer t.discard()
		err = s.commit(context.Background(), d, t, r, base, cur, false)
	}
	var ue *UnwrittenError
	switch {
	case errors.As(err, &ue):
		return nil, nil, err
	case errors.Is(err, ErrSuperseded):
		s.warn("a rescued credential was not adopted: a newer one was written meanwhile; removed it")
		_ = d.Remove(RescueFileName)
		return readIn(d)
	case err != nil:
		// Still cannot be written (ErrCannotCommit): it stays rescued.
		return nil, nil, &UnwrittenError{Cred: r, Rescued: true, Cause: err}
	}
	_ = d.Remove(RescueFileName)
	_ = d.Sync()
	s.warn("adopted the refreshed credential an earlier commit could not write; auth.json holds it now")
	return r, r.Marshal(), nil
}

func (s *FileStore) warn(msg string, args ...any) {
	if s.Logger != nil {
		s.Logger.Warn(msg, args...)
	}
}

// checkNotSuperseded decides, under auth.json.lock, whether the file on disk
// may still be replaced. Under auth.lock a writer following the CLI's
// protocol cannot have changed it, but an old CLI (no locks, rewrite in
// place) or a hand edit can: a file that changed since we read it is kept
// unless what we started from may replace it (ReplaceOnCommit).
func checkNotSuperseded(base []byte, cur, disk *AuthFile, raw []byte, readErr error) error {
	switch {
	case readErr != nil && errors.Is(readErr, os.ErrNotExist):
		if base == nil {
			return nil
		}
		// Someone deleted it (a logout) while we refreshed: respect that.
		return fmt.Errorf("%w: auth.json was removed meanwhile", ErrSuperseded)
	case readErr != nil && disk == nil:
		if bytes.Equal(raw, base) {
			return nil
		}
		// Unparseable now but different: someone is mid-way through an
		// in-place write (old CLI). Do not trample it.
		return fmt.Errorf("%w: auth.json changed meanwhile (now unreadable)", ErrSuperseded)
	case bytes.Equal(raw, base):
		return nil
	case !MayReplace(cur, disk, ReplaceOnCommit).Replace:
		return fmt.Errorf("%w: auth.json was rewritten meanwhile", ErrSuperseded)
	}
	return nil
}
