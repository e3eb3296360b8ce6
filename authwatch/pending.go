package authwatch

import (
	"context"
	"errors"
	"time"
)

// rescueWaiting reports whether the file store holds a rescued answer
// (RescueFileName) for Update to adopt.
func (w *Watchdog) rescueWaiting() bool {
	fs := w.fileStore()
	if fs == nil {
		return false
	}
	_, err := fs.Home.Lstat(RescueFileName)
	return err == nil
}

// writePending commits a refresh's answer that an earlier commit could not
// write: the one this loop holds (pending), or the one a process left in
// RescueFileName, which the file store's Update adopts before anything
// else. No POST is made: the token in the store is spent.
func (w *Watchdog) writePending(ctx context.Context, st *Status) passResult {
	pending := w.pending
	var dropped string
	err := w.store.Update(ctx, func(ctx context.Context, cur *AuthFile) (*AuthFile, error) {
		if pending == nil || cur != nil && cur.Tokens().RefreshToken == pending.Tokens().RefreshToken {
			return nil, nil // adopted by the store, or already there
		}
		if v := MayReplace(pending, cur, ReplaceOnRescue); !v.Replace {
			dropped = string(v.Reason)
			return nil, nil
		}
		return pending, nil
	})
	after := w.cfg.Now()
	var ue *UnwrittenError
	if errors.As(err, &ue) || err != nil && !errors.Is(err, ErrSuperseded) {
		if ue == nil {
			ue = &UnwrittenError{Cred: pending, Cause: err}
		}
		return w.unwritten(after, st, ue)
	}
	w.pending = nil
	f, _ := w.store.Load(ctx)
	fillStatus(st, f, after)
	next := Decide(f, after, w.cfg.Policy).NextCheck
	if dropped != "" || errors.Is(err, ErrSuperseded) {
		if dropped == "" {
			dropped = "a newer credential was written meanwhile"
		}
		w.log.Warn("refresh: dropped the refreshed credential that could not be written", "reason", dropped)
		return w.conclude(st, after, ending{found: foundSuperseded, next: next,
			why: "a refreshed credential that could not be written was dropped: " + dropped})
	}
	w.log.Info("refresh: the refreshed credential is written now")
	r := w.conclude(st, after, ending{found: foundRefreshed, next: next,
		why: "the refreshed credential that could not be written earlier is in auth.json now"})
	r.base = w.committedVersion(f)
	return r
}

// unwritten ends a pass whose refresh answer is not in auth.json yet: a
// transient failure retried with backoff, reported as "refreshed, not yet
// written" until it is.
func (w *Watchdog) unwritten(now time.Time, st *Status, ue *UnwrittenError) passResult {
	fillStatus(st, ue.Cred, now)
	return w.transient(st, now, ending{found: foundUnwritten, why: ue.Error(), err: &RefreshError{Class: ClassTransient, Kind: KindCommit, Err: ue}})
}
