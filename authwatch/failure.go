package authwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// unreadable records an auth.json this process may not read (EACCES): not
// absent, and not a failure to retry quickly, but an operator's mistake to
// name (who owns it, its mode, the fix), once in the log and in the status
// for health. The loop's wait wakes when the file changes.
func (w *Watchdog) unreadable(now time.Time, st *Status, err error) passResult {
	why := "auth.json cannot be read by this process (uid " + strconv.Itoa(os.Geteuid()) + ")"
	if fst, serr := w.cfg.Home.Lstat(AuthFileName); serr == nil {
		why = fmt.Sprintf("auth.json belongs to uid %d gid %d with mode %04o; this watchdog runs as uid %d and cannot read it",
			fst.Uid, fst.Gid, fst.Mode&0o7777, os.Geteuid())
	}
	why += ": log in as the agent's user (docker exec -u agent ... codex login) or restart the container (boot gives CODEX_HOME back to the agent)"
	if w.unreadableSaid != why {
		w.unreadableSaid = why
		w.log.Warn("auth.json is unreadable; not refreshing", "reason", why, "error", errText(err))
	}
	return w.conclude(st, now, ending{found: foundUnreadable, why: why, err: &RefreshError{Class: ClassTransient, Kind: KindUnreadable, Err: err}})
}

func failTag(re *RefreshError) string {
	if re.Kind == KindHTTP && re.Status != 0 {
		return strconv.Itoa(re.Status)
	}
	return re.Kind
}

// asRefreshError classifies anything Update returned.
func asRefreshError(err error, posted bool) *RefreshError {
	var re *RefreshError
	if errors.As(err, &re) {
		return re
	}
	switch {
	case errors.Is(err, ErrLockTimeout):
		return &RefreshError{Class: ClassTransient, Kind: KindLockTimeout, Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &RefreshError{Class: ClassTransient, Kind: KindCanceled, Err: err}
	case errors.Is(err, ErrMalformed):
		return &RefreshError{Class: ClassTransient, Kind: KindUnreadable, Err: err}
	case errors.As(err, new(*UnwrittenError)):
		return &RefreshError{Class: ClassTransient, Kind: KindCommit, Err: err}
	case errors.Is(err, ErrCannotCommit):
		return &RefreshError{Class: ClassTransient, Kind: KindCannotCommit, Err: err}
	case posted:
		return &RefreshError{Class: ClassTransient, Kind: KindCommit, Err: err}
	}
	return &RefreshError{Class: ClassTransient, Kind: KindStore, Err: err}
}

// transient ends a pass with a transient failure (conclude), logged by what
// it means to the operator.
func (w *Watchdog) transient(st *Status, now time.Time, e ending) passResult {
	r := w.conclude(st, now, e)
	re := e.err
	switch re.Kind {
	case KindCommit:
		w.log.Error("refresh: the new credential is not in auth.json yet; retrying the write (the old refresh token is spent and will not be sent again)", "error", errText(re.Err))
	case KindCannotCommit:
		w.log.Error("refresh: not refreshing, the new credential could not be written; fix CODEX_HOME", "error", errText(re.Err))
	default:
		w.log.Warn("refresh: transient failure; the credential is unchanged", "kind", re.Kind, "http_status", re.Status, "code", re.Code, "retry_after", re.RetryAfter, "failures", w.failures, "error", errText(re))
	}
	return r
}

// backoff is the wait after a transient failure: capped exponential from
// MinBackoff, at least Retry-After, and never so late that f's access token
// expires first.
func (w *Watchdog) backoff(now time.Time, f *AuthFile, re *RefreshError) time.Duration {
	d := w.cfg.MinBackoff
	for i := 1; i < w.failures && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > w.cfg.MaxBackoff {
		d = w.cfg.MaxBackoff
	}
	if re != nil && re.RetryAfter > d {
		d = re.RetryAfter
	}
	if f != nil {
		if exp, ok := f.AccessExpiry(); ok {
			// Retry before the token would expire, whatever the server
			// asked for: an expired access token breaks the next turn.
			// Once inside the guard (or expired) there is nothing
			// left to save; the plain backoff spares the endpoint.
			if limit := exp.Add(-expiryGuard).Sub(now); limit > 0 && limit < d {
				d = limit
			}
		}
	}
	return d
}
