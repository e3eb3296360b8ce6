package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
)

// commitLocal writes a into the local auth.json under the CLI's lock
// protocol, when a may replace it (authwatch.ReplaceOnFollow: not the same
// tokens, nor a strictly newer credential of the same login, which gets
// published instead).
func (f *Fleet) commitLocal(ctx context.Context, a *authwatch.AuthFile) error {
	local, _, _ := f.cfg.Home.Read()
	if authwatch.MayReplace(a, local, authwatch.ReplaceOnFollow).Replace {
		if err := f.cfg.Home.Commit(ctx, a); err != nil {
			return fmt.Errorf("write local auth.json: %w", err)
		}
	}
	f.stamp = f.cfg.Home.Stamp()
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
		if again, err := f.syncRecord(ctx, conn, rec); !again {
			return err
		}
	}
	return fmt.Errorf("credential %q kept moving; will retry", f.cfg.Name)
}

// syncRecord is syncStored on rec, the stored generation as just read
// (nil: none); again when the store moved meanwhile and is to be read anew.
func (f *Fleet) syncRecord(ctx context.Context, conn *pgstore.Conn, rec *pgstore.Record) (again bool, err error) {
	// The stamp is taken before the read: a change after it is seen at
	// the next look.
	seen := f.cfg.Home.Stamp()
	local, _, _ := f.cfg.Home.Read()
	if rec == nil {
		if !authwatch.MayReplace(local, nil, authwatch.ReplaceOnPublish).Replace {
			f.stamp = seen
			f.setState("ok", nil, 0)
			f.log.Warn("credential store is empty and there is no local credential to start it with", "store", f.desc)
			return false, nil
		}
		created, err := conn.Create(ctx, f.cfg.Name, *newGeneration(local))
		if err != nil {
			return false, redactedError(err)
		}
		if created {
			f.log.Info("credential store started from the local credential", "store", f.desc, "generation", 1)
		}
		return true, nil
	}
	stored, err := authwatch.ParseAuthFile(rec.Data)
	if err != nil {
		return false, fmt.Errorf("stored credential %q generation %d: %w", f.cfg.Name, rec.Generation, err)
	}
	f.head = pgstore.Head{Generation: rec.Generation, Rejected: !rec.RejectedAt.IsZero()}
	resealed, err := conn.Reseal(ctx, rec)
	if err != nil {
		f.log.Warn("could not reseal the stored credential with the current key", "error", redactErr(err))
	} else if resealed {
		f.log.Info("stored credential resealed with the current key", "key_id", f.cfg.Keys.WriteKeyID())
	}
	if authwatch.MayReplace(local, stored, publishPolicy(!rec.RejectedAt.IsZero())).Replace {
		gen, err := conn.CompareAndSet(ctx, f.cfg.Name, rec.Generation, *newGeneration(local))
		if errors.Is(err, pgstore.ErrSuperseded) {
			return true, nil
		}
		if err != nil {
			return false, redactedError(err)
		}
		f.head = pgstore.Head{Generation: gen}
		f.setStored(gen, local)
		f.log.Info("published a newer local credential", "store", f.desc, "generation", gen)
		f.stamp = f.cfg.Home.Stamp()
		return false, nil
	}
	f.setStored(rec.Generation, stored)
	v := authwatch.MayReplace(stored, local, authwatch.ReplaceOnFollow)
	if !v.Replace {
		f.stamp = seen
		return false, nil
	}
	if err := f.commitLocal(ctx, stored); err != nil {
		return false, err
	}
	if v.Reason == authwatch.ReasonOtherAccount {
		f.log.Warn("local auth.json held another account; replaced by the shared credential", "store", f.desc)
	}
	f.log.Info("adopted credential generation", "generation", rec.Generation, "by", rec.UpdatedBy)
	return false, nil
}

// poll is the timed look at the store: the stored generation's Head, and
// the full read (syncStored) only when it moved or the last sync did not
// end well. A poll of thousands of followers is one short row each; the
// local auth.json is checkLocal's to watch.
func (f *Fleet) poll(ctx context.Context, conn *pgstore.Conn) error {
	if f.State().State == "ok" {
		h, err := conn.Head(ctx, f.cfg.Name)
		if err != nil {
			return redactedError(err)
		}
		if h.Generation != 0 && h == f.head {
			return nil
		}
	}
	return f.syncStored(ctx, conn)
}

// checkLocal publishes a local auth.json that changed since we last saw it
// and is strictly newer than the stored generation (the CLI refreshed it).
// The new stamp counts as seen even when the sync fails: a store that cannot
// be read (say, a key this launcher lacks) is retried at the next poll, not
// queried and logged at every look at the file.
func (f *Fleet) checkLocal(ctx context.Context, conn *pgstore.Conn) error {
	st := f.cfg.Home.Stamp()
	if st == f.stamp {
		return nil
	}
	f.stamp = st
	return f.syncStored(ctx, conn)
}

// publishPolicy is when the local credential becomes the next generation:
// authwatch.ReplaceOnPublish, or ReplaceOnPublishRejected once the stored
// generation was rejected for good.
func publishPolicy(rejected bool) authwatch.ReplacePolicy {
	if rejected {
		return authwatch.ReplaceOnPublishRejected
	}
	return authwatch.ReplaceOnPublish
}
