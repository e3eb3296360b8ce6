package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
)

// fileStamp identifies a version of auth.json cheaply (no read).
type fileStamp struct {
	ino, size int64
	mtime     time.Time
	ok        bool
}

// stampOf is auth.json's stamp in h, of the entry itself (never a link's
// target).
func stampOf(h authwatch.Home) fileStamp {
	st, err := h.Lstat(authwatch.AuthFileName)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{ino: int64(st.Ino), size: st.Size, mtime: time.Unix(st.Mtim.Unix()), ok: true}
}

// commitLocal writes a into the local auth.json under the CLI's lock
// protocol, unless the file already holds the same tokens or a strictly
// newer credential of the same account (that one gets published instead).
func (f *Fleet) commitLocal(ctx context.Context, a *authwatch.AuthFile) error {
	local, _, _ := f.cfg.Home.Read()
	if local != nil && (sameTokens(local, a) || localNewer(local, a)) {
		f.stamp = stampOf(f.cfg.Home)
		return nil
	}
	if err := f.cfg.Home.Commit(ctx, a); err != nil {
		return fmt.Errorf("write local auth.json: %w", err)
	}
	f.stamp = stampOf(f.cfg.Home)
	return nil
}

// syncStored reads the stored generation and brings store and local file in
// step: bootstrap an empty store from the local credential, adopt a stored
// generation, or publish a strictly newer local one.
func (f *Fleet) syncStored(ctx context.Context, conn *pgstore.Conn) error {
	for attempt := 0; attempt < 3; attempt++ {
		rec, err := conn.Get(ctx, f.cfg.Name)
		if err != nil {
			return redactedError(err)
		}
		// The stamp is taken before the read: a change after it is seen
		// at the next look.
		seen := stampOf(f.cfg.Home)
		local, _, _ := f.cfg.Home.Read()
		if rec == nil {
			if !usable(local) {
				f.stamp = seen
				f.setState("ok", nil, 0)
				f.log.Warn("credential store is empty and there is no local credential to start it with", "store", f.desc)
				return nil
			}
			created, err := conn.Create(ctx, f.cfg.Name, *newGeneration(local))
			if err != nil {
				return redactedError(err)
			}
			if created {
				f.log.Info("credential store started from the local credential", "store", f.desc, "generation", 1)
			}
			continue
		}
		stored, err := authwatch.ParseAuthFile(rec.Data)
		if err != nil {
			return fmt.Errorf("stored credential %q generation %d: %w", f.cfg.Name, rec.Generation, err)
		}
		resealed, err := conn.Reseal(ctx, rec)
		if err != nil {
			f.log.Warn("could not reseal the stored credential with the current key", "error", redactErr(err))
		} else if resealed {
			f.log.Info("stored credential resealed with the current key", "key_id", f.cfg.Keys.WriteKeyID())
		}
		if supersedes(local, stored, !rec.RejectedAt.IsZero()) {
			gen, err := conn.CompareAndSet(ctx, f.cfg.Name, rec.Generation, *newGeneration(local))
			if errors.Is(err, pgstore.ErrSuperseded) {
				continue
			}
			if err != nil {
				return redactedError(err)
			}
			f.setStored(gen, local)
			f.log.Info("published a newer local credential", "store", f.desc, "generation", gen)
			f.stamp = stampOf(f.cfg.Home)
			return nil
		}
		f.setStored(rec.Generation, stored)
		if local != nil && sameTokens(local, stored) {
			f.stamp = seen
			return nil
		}
		if err := f.commitLocal(ctx, stored); err != nil {
			return err
		}
		if local != nil && local.AccountID() != stored.AccountID() {
			f.log.Warn("local auth.json held another account; replaced by the shared credential", "store", f.desc)
		}
		f.log.Info("adopted credential generation", "generation", rec.Generation, "by", rec.UpdatedBy)
		return nil
	}
	return fmt.Errorf("credential %q kept moving; will retry", f.cfg.Name)
}

// checkLocal publishes a local auth.json that changed since we last saw it
// and is strictly newer than the stored generation (the CLI refreshed it).
// The new stamp counts as seen even when the sync fails: a store that cannot
// be read (say, a key this launcher lacks) is retried at the next poll, not
// queried and logged at every look at the file.
func (f *Fleet) checkLocal(ctx context.Context, conn *pgstore.Conn) error {
	st := stampOf(f.cfg.Home)
	if st == f.stamp {
		return nil
	}
	f.stamp = st
	return f.syncStored(ctx, conn)
}

// usable: a credential worth starting a store with.
func usable(a *authwatch.AuthFile) bool {
	if a == nil {
		return false
	}
	ok, _ := a.Refreshable()
	return ok
}

// supersedes: the local credential should become the next generation. It
// is strictly newer, or the store is empty, or the stored generation was
// rejected for good and the local one is another login that is not older
// (an operator's new login; a spent older copy is not).
func supersedes(local, stored *authwatch.AuthFile, rejected bool) bool {
	switch {
	case !usable(local):
		return false
	case stored == nil:
		return true
	case localNewer(local, stored):
		return true
	case !rejected || sameTokens(local, stored):
		return false
	case local.AccountID() != stored.AccountID():
		return true
	}
	cmp, _ := authwatch.CompareFreshness(local, stored)
	return cmp >= 0
}

func sameTokens(a, b *authwatch.AuthFile) bool {
	return a.Tokens() == b.Tokens()
}

// localNewer: local is a strictly fresher credential (authwatch's
// CompareFreshness) of the same account than stored, with other tokens.
// Without evidence of being newer, the store wins.
func localNewer(local, stored *authwatch.AuthFile) bool {
	if local == nil || stored == nil || !usable(local) {
		return false
	}
	if local.AccountID() == "" || local.AccountID() != stored.AccountID() || sameTokens(local, stored) {
		return false
	}
	cmp, _ := authwatch.CompareFreshness(local, stored)
	return cmp > 0
}
