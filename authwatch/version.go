package authwatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
)

// load reads the credential a pass decides on and, in the loop, the auth.json
// version the wait after the pass compares against. That version must be
// the file the decision saw: taken before it, a rewrite in between wakes the
// wait for a file the pass has already decided on; taken after it, a rewrite
// in between is absorbed into the base and goes unnoticed until the next
// check. The file store's credential is auth.json itself, so one read gives
// both; the stamp is taken before that read, so a rewrite after it moves the
// stamp and the poll compares contents. Another store's Load does not say
// what it read of auth.json: the version is read just before it, where a
// rewrite costs a spare pass rather than a missed change. A lone Pass has no
// wait after it and takes no version.
func (w *Watchdog) load(ctx context.Context) (*AuthFile, fileVersion, error) {
	home := w.cfg.Home
	var base fileVersion
	fs := w.fileStore()
	if fs == nil {
		if w.loop {
			base = authVersion(home)
		}
		f, err := w.store.Load(ctx)
		return f, base, err
	}
	if w.loop {
		base.stamp = home.Stamp()
	}
	f, raw, err := fs.read()
	if w.loop && (raw != nil || err != nil) {
		// As contentSum sums the same read; no file stays zero.
		base.sum = versionSum(raw, err)
	}
	return f, base, err
}

// fileStore is the store when it is the file store of the auth.json the
// loop watches, else nil.
func (w *Watchdog) fileStore() *FileStore {
	if fs, ok := w.store.(*FileStore); ok && fs.Home.AuthPath() == w.cfg.Home.AuthPath() {
		return fs
	}
	return nil
}

// committedVersion is the base after a pass committed f: our own write is no
// change, anyone's after it is. The file store wrote f.Marshal() to
// auth.json, so no read is needed, and none must be made: once the locks are
// released, the CLI may write at once, and a read would take that in. The
// stamp is left unknown (a stat now could already be of the CLI's file), so
// the first poll compares contents. Another store's Update does not say
// what it left in auth.json: that is read back, and a write between its
// commit and this read goes unnoticed until the next check.
func (w *Watchdog) committedVersion(f *AuthFile) fileVersion {
	if !w.loop {
		return fileVersion{}
	}
	if w.fileStore() == nil {
		return authVersion(w.cfg.Home)
	}
	return fileVersion{stamp: Stamp{size: -1}, sum: sha256.Sum256(f.Marshal())}
}

// fileVersion is what a wait compares auth.json against.
type fileVersion struct {
	stamp Stamp
	sum   [32]byte
}

func authVersion(h Home) fileVersion {
	return fileVersion{stamp: h.Stamp(), sum: contentSum(h)}
}

// Stamp identifies a version of auth.json cheaply (a stat, no read): two
// stamps differ when the file was replaced or rewritten. The zero Stamp is
// no file (or one that cannot be looked at); a negative size
// (committedVersion) matches no file, so the next look reads the contents.
type Stamp struct{ ino, size, mtime int64 }

// Stamp is auth.json's stamp in h, of the entry itself (a link is not
// followed).
func (h Home) Stamp() Stamp {
	st, err := h.Lstat(AuthFileName)
	if err != nil {
		return Stamp{}
	}
	return Stamp{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano()}
}

// contentSum is the sum of auth.json's bytes (versionSum).
func contentSum(h Home) [32]byte {
	data, err := h.ReadFile(AuthFileName, MaxAuthFileSize)
	return versionSum(data, err)
}

// unreadableSum stands for an auth.json that is there but cannot be read
// (no permission, not a regular file, too large), so that its becoming
// readable, or going away, is a change the wait notices.
var unreadableSum = sha256.Sum256([]byte("\x00unreadable"))

// versionSum is the sum of a read's result: zero for no file, unreadableSum
// for one that could not be read, else the bytes' SHA-256 (a malformed
// file's too).
func versionSum(data []byte, err error) [32]byte {
	switch {
	case err == nil || data != nil:
		return sha256.Sum256(data)
	case errors.Is(err, os.ErrNotExist):
		return [32]byte{}
	}
	return unreadableSum
}
