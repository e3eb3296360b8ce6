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
func (w *Watchdog) writePending(ctx context.Context, now time.Time, st *Status) passResult {
	pending := w.pending
	var dropped string
	err := w.store.Update(ctx, func(ctx context.Context, cur *AuthFile) (*AuthFile, error) {
		if pending == nil || cur != nil && cur.Tokens().RefreshToken == pending.Tokens().RefreshToken {
			return nil, nil // adopted by the store, or already there
		}
		if ok, why := mayAdopt(pending, cur); !ok {
			dropped = why
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
	if dropped != "" || errors.Is(err, ErrSuperseded) {
		if dropped == "" {
			dropped = "a newer credential was written meanwhile"
		}
		st.WatchdogLastOutcome, st.Credential, st.Reason = "skip:superseded", "ok", "a refreshed credential that could not be written was dropped: "+dropped
		w.log.Warn("refresh: dropped the refreshed credential that could not be written", "reason", dropped)
		return w.nothingToDo(Decide(f, after, w.cfg.Policy).NextCheck)
	}
	w.failures, w.lastErr, w.lastSuccess = 0, nil, after
	st.WatchdogLastOutcome, st.Credential, st.Reason = "refreshed", "ok", "the refreshed credential that could not be written earlier is in auth.json now"
	w.log.Info("refresh: the refreshed credential is written now")
	return passResult{outcome: OutcomeRefreshed, next: Decide(f, after, w.cfg.Policy).NextCheck, base: w.committedVersion(f)}
}

// unwritten records a refresh whose answer is not in auth.json yet: a
// transient failure retried with backoff, reported as "refreshed, not yet
// written" until it is.
func (w *Watchdog) unwritten(now time.Time, st *Status, ue *UnwrittenError) passResult {
	fillStatus(st, ue.Cred, now)
	st.WatchdogLastOutcome, st.Credential, st.Reason = "fail:transient_"+KindCommit, "unwritten", ue.Error()
	return w.transient(now, nil, &RefreshError{Class: ClassTransient, Kind: KindCommit, Err: ue})
}
