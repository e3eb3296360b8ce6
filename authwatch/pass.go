package authwatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// passResult is what one pass learned, for the loop.
type passResult struct {
	outcome Outcome
	err     error
	next    time.Time
	// base is the auth.json version the wait after the pass compares
	// against (see load and committedVersion); zero for a lone Pass.
	base fileVersion
}

// Pass runs one watchdog pass (`refresh --once`) and writes the status file.
// The error is non-nil only for outcomes 2 and 3, and is token-free.
func (w *Watchdog) Pass(ctx context.Context) (Outcome, error) {
	r := w.pass(ctx)
	return r.outcome, r.err
}

func (w *Watchdog) pass(ctx context.Context) passResult {
	r, st := w.decidePass(ctx)
	w.writeStatus(st)
	return r
}

// writeStatus writes st unless it is nil (no CODEX_HOME to write into).
func (w *Watchdog) writeStatus(st *Status) {
	if st == nil {
		return
	}
	if err := WriteStatus(w.cfg.Home, *st); err != nil {
		w.log.Warn("status file not written", "error", errText(err))
	}
}

// decidePass is one pass without the status write: its result, and the
// status to write (nil when there is no CODEX_HOME).
func (w *Watchdog) decidePass(ctx context.Context) (passResult, *Status) {
	now := w.cfg.Now()
	st := Status{
		LastRefreshAgeSeconds: -1,
		WatchdogLastRunISO:    isoTime(now),
		RefreshOwner:          w.cfg.Owner,
		PID:                   w.cfg.PID,
		WatchdogLoop:          w.loop,
		Store:                 w.cfg.StoreName,
	}
	if d, err := w.cfg.Home.Open(); err != nil {
		// No CODEX_HOME: nothing to refresh and nowhere to report. A
		// clean skip.
		w.log.Debug("skip: CODEX_HOME is not there", "codex_home", w.cfg.Home.Dir, "error", errText(err))
		return passResult{outcome: OutcomeNothingToDo, next: now.Add(w.cfg.Policy.Interval)}, nil
	} else {
		d.Close()
	}
	cur, base, err := w.load(ctx)
	res := w.decideAndRefresh(ctx, now, &st, cur, err)
	if res.outcome != OutcomeRefreshed {
		// Only a refresh this pass committed moves the base: that write
		// is not "auth.json changed".
		res.base = base
	}
	return res, &st
}

// decideAndRefresh decides on cur, the credential load returned (or its
// error), and refreshes it when due.
func (w *Watchdog) decideAndRefresh(ctx context.Context, now time.Time, st *Status, cur *AuthFile, err error) passResult {
	p := w.cfg.Policy
	later := now.Add(p.Interval)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			w.log.Error("skip: auth.json is not readable; nothing is changed", "error", errText(err))
			return w.conclude(st, now, ending{found: foundMalformed, why: errText(err), next: later})
		}
		if errors.Is(err, os.ErrPermission) {
			return w.unreadable(now, st, err)
		}
		w.log.Error("loading the credential failed", "error", errText(err))
		return w.transient(st, now, ending{found: foundTransient, why: errText(err), err: &RefreshError{Class: ClassTransient, Kind: KindLoad, Err: err}})
	}
	if cur == nil {
		w.log.Debug("skip: no auth.json (no ChatGPT login in this CODEX_HOME)", "path", w.cfg.Home.AuthPath())
		return w.conclude(st, now, ending{found: foundNoAuth, why: "no auth.json", next: later})
	}
	fillStatus(st, cur, now)
	if ok, why := cur.Refreshable(); !ok {
		w.log.Debug("skip: not a refreshable ChatGPT login", "mode", string(cur.Mode()), "reason", why)
		return w.conclude(st, now, ending{found: foundNotRefreshable, why: why, next: later})
	}
	if w.isDead(cur) {
		w.log.Warn("credential dead: not spending the rejected refresh token again; waiting for a new login")
		return w.conclude(st, now, ending{found: foundDeadToken, err: w.lastErrOrDead(),
			why: "the refresh token was rejected for good; waiting for a new login (auth.json to change)"})
	}
	if w.pending != nil || w.rescueWaiting() {
		return w.writePending(ctx, st)
	}
	v := Decide(cur, now, p)
	if !v.Refresh {
		w.log.Debug("no-op: credential fresh", "reason", v.Reason, "next_check", isoTime(v.NextCheck))
		return w.conclude(st, now, ending{found: foundFresh, why: v.Reason, next: v.NextCheck})
	}
	if !w.cfg.Owner {
		w.log.Warn("refresh due but not the refresh owner (CODEX_AUTH_REFRESH_OWNER=0); watching only", "reason", v.Reason)
		return w.conclude(st, now, ending{found: foundNotOwner, next: now.Add(min(p.Interval, w.cfg.MaxBackoff)),
			why: "refresh due (" + v.Reason + ") but this process is not the refresh owner"})
	}
	return w.refresh(ctx, now, cur, v, st)
}

func (w *Watchdog) refresh(ctx context.Context, now time.Time, seen *AuthFile, v Verdict, st *Status) passResult {
	p := w.cfg.Policy
	var (
		used      string // the refresh token we redeemed (never logged)
		posted    bool
		committed *AuthFile
		adopted   string // why no POST was needed after all
		why       = v.Reason
	)
	reason := ReasonScheduled
	if v.HasExpiry && v.AccessExpiry.Sub(now) <= EffectiveMargin(seen, p) {
		reason = ReasonProactiveExpiry
	}
	w.log.Debug("refresh: starting", "reason", why, "endpoint", w.cfg.Endpoint.String())
	err := w.store.Update(ctx, func(ctx context.Context, cur *AuthFile) (*AuthFile, error) {
		// Guarded re-read, as the CLI does: under the lock the file may
		// already have been refreshed by someone else.
		if cur == nil {
			adopted = "auth.json disappeared meanwhile (logout?)"
			return nil, nil
		}
		if ok, why := cur.Refreshable(); !ok {
			adopted = "auth.json was replaced meanwhile by one that is not refreshable: " + why
			return nil, nil
		}
		if v2 := Decide(cur, w.cfg.Now(), p); !v2.Refresh {
			adopted = "another writer refreshed the credential meanwhile; adopted it"
			return nil, nil
		}
		if w.isDead(cur) {
			return nil, w.lastErrOrDead()
		}
		if err := ctx.Err(); err != nil {
			// Shutting down before the POST: abandon, nothing spent.
			return nil, &RefreshError{Class: ClassTransient, Kind: KindCanceled, Err: err}
		}
		if w.cfg.Redeeming != nil {
			w.cfg.Redeeming()
		}
		used = cur.Tokens().RefreshToken
		posted = true
		// Once sent, the POST runs to its end even if ctx is cancelled:
		// the server may redeem the token, and its answer must be kept.
		resp, err := w.cfg.Endpoint.Refresh(context.WithoutCancel(ctx), used, reason)
		if err != nil {
			return nil, err
		}
		committed = cur.Apply(resp, w.cfg.Now())
		return committed, nil
	})
	after := w.cfg.Now()
	var ue *UnwrittenError
	switch {
	case errors.As(err, &ue):
		if posted {
			w.pending = ue.Cred
		}
		return w.unwritten(after, st, ue)
	case err == nil && adopted != "":
		f, _ := w.store.Load(ctx)
		fillStatus(st, f, after)
		found := foundAdopted
		if f == nil {
			found = foundAdoptedAbsent
		} else if ok, _ := f.Refreshable(); !ok {
			found = foundAdoptedNotRefreshable
		}
		w.log.Debug("no-op: nothing to refresh after the locked re-read", "reason", adopted)
		return w.conclude(st, after, ending{found: found, why: adopted, next: Decide(f, after, p).NextCheck})
	case err == nil && committed != nil:
		fillStatus(st, committed, after)
		nv := Decide(committed, after, p)
		next := nv.NextCheck
		exp, _ := committed.AccessExpiry()
		if nv.Refresh {
			// A token with no lifetime to read that is already inside
			// the margin: do not spin, wait at least MinBackoff.
			next = after.Add(min(max(exp.Sub(after)/2, w.cfg.MinBackoff), p.Interval))
		}
		if m := EffectiveMargin(committed, p); m < p.SafetyMargin && !w.shortWarned {
			w.shortWarned = true
			w.log.Warn("refresh: access tokens live shorter than twice the safety margin; refreshing at half their life",
				"access_expires_at", isoTime(exp), "safety_margin", p.SafetyMargin, "effective_margin", m)
		}
		w.log.Info("refresh: ok", "access_expires_at", isoTime(exp), "rotated_refresh_token", committed.Tokens().RefreshToken != used, "next_check", isoTime(next))
		r := w.conclude(st, after, ending{found: foundRefreshed, why: why, next: next})
		r.base = w.committedVersion(committed)
		return r
	case errors.Is(err, ErrSuperseded):
		f, _ := w.store.Load(ctx)
		fillStatus(st, f, after)
		w.log.Warn("refresh: a newer credential appeared during our refresh; kept it and dropped ours", "error", errText(err))
		return w.conclude(st, after, ending{found: foundSuperseded, why: "a newer credential was written meanwhile; kept it",
			next: Decide(f, after, p).NextCheck})
	}
	re := asRefreshError(err, posted)
	if re.Class != ClassPermanent {
		return w.transient(st, after, ending{found: foundTransient, why: re.Error(), err: re, seen: seen})
	}
	if f := w.rotatedElsewhere(ctx, used); f != nil {
		seenAt := w.cfg.Now()
		fillStatus(st, f, seenAt)
		w.log.Info("refresh: token rejected but already rotated by another writer; adopted the new credential", "http_status", re.Status, "code", re.Code)
		return w.conclude(st, seenAt, ending{found: foundAdopted, next: Decide(f, seenAt, p).NextCheck,
			why: "the endpoint rejected our refresh token, but another writer (the CLI) had rotated it: credential alive"})
	}
	if used != "" {
		w.deadToken, w.hasDead = sha256.Sum256([]byte(used)), true
	}
	w.log.Error("refresh: the token endpoint refused the refresh token for good: the login is dead; a new login is needed (codex login, as the agent user)", "http_status", re.Status, "code", re.Code, "kind", re.Kind)
	return w.conclude(st, after, ending{found: foundRejected, err: re,
		why: "refresh token rejected for good; someone must log in again (codex login) or re-inject CODEX_AUTH_JSON"})
}

func (w *Watchdog) isDead(f *AuthFile) bool {
	return w.hasDead && sha256.Sum256([]byte(f.Tokens().RefreshToken)) == w.deadToken
}

// lastErrOrDead is the permanent failure a dead credential is reported
// with: the endpoint's refusal when it is still the last error.
func (w *Watchdog) lastErrOrDead() *RefreshError {
	if w.lastErr != nil && w.lastErr.Class == ClassPermanent {
		return w.lastErr
	}
	return &RefreshError{Class: ClassPermanent, Kind: KindDeadToken, Err: errors.New("refresh token previously rejected")}
}

// rotatedElsewhere watches auth.json for RecheckWindow after a permanent
// answer, outside the lock: when the CLI redeemed the same token first, it
// commits its rotated one now, and the credential is alive. It returns that
// file, or nil when no other refresh token appeared in time.
func (w *Watchdog) rotatedElsewhere(ctx context.Context, used string) *AuthFile {
	if used == "" {
		return nil
	}
	rotated := func() *AuthFile {
		f, err := w.store.Load(ctx)
		if err != nil || f == nil || f.Tokens().RefreshToken == "" || f.Tokens().RefreshToken == used {
			return nil
		}
		return f
	}
	deadline := w.cfg.Now().Add(w.cfg.RecheckWindow)
	for {
		if f := rotated(); f != nil {
			return f
		}
		if !w.cfg.Now().Before(deadline) {
			return nil
		}
		if w.cfg.Sleep(ctx, w.cfg.RecheckEvery) != nil {
			return rotated()
		}
	}
}

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
	case errors.Is(err, context.Canceled):
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
	case KindCanceled:
		// The launcher is stopping: nothing was sent, nothing to fix.
		w.log.Debug("refresh: abandoned before its POST (stopping); the credential is unchanged", "error", errText(re))
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
