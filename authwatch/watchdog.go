package authwatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Outcome is a pass's result; its value is `refresh --once`'s exit code.
type Outcome int

const (
	OutcomeRefreshed   Outcome = 0
	OutcomeNothingToDo Outcome = 1
	OutcomeTransient   Outcome = 2
	OutcomePermanent   Outcome = 3
)

func (o Outcome) String() string {
	switch o {
	case OutcomeRefreshed:
		return "refreshed"
	case OutcomeNothingToDo:
		return "nothing_to_do"
	case OutcomeTransient:
		return "transient_failure"
	case OutcomePermanent:
		return "permanent_failure"
	}
	return "outcome_" + strconv.Itoa(int(o))
}

// Defaults of Config's tuning knobs.
const (
	DefaultMinBackoff    = 10 * time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultPollInterval  = 5 * time.Second
	DefaultRecheckWindow = 3 * time.Second
	DefaultRecheckEvery  = 100 * time.Millisecond
	expiryGuard          = time.Minute
	maxJitter            = 30 * time.Second
	jitterFraction       = 0.05
	defaultStoreName     = "file"
)

// Config configures a Watchdog. Zero values take the defaults.
type Config struct {
	Home Home
	// Store holds the credential; nil means the file store of Home.
	Store Store
	// StoreName names the store in the status file ("file", "postgres").
	StoreName string
	// Endpoint is the token endpoint; required when Owner.
	Endpoint *Endpoint
	Policy   Policy
	// Owner: this process may redeem the refresh token. False
	// (CODEX_AUTH_REFRESH_OWNER=0) watches and reports, never POSTs.
	Owner  bool
	Logger hclog.Logger

	// Now and Sleep are the clock; tests inject a fake one. Sleep returns
	// early with ctx's error when ctx is done.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a random extra delay for a wait of d; nil means up to
	// 5% of d (at most 30 s). Tests pass a function returning 0.
	Jitter func(d time.Duration) time.Duration

	// MinBackoff and MaxBackoff bound the retry delay after a transient
	// failure (doubling from min to max, honouring Retry-After).
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often Run looks whether auth.json changed while
	// it waits (a stat, and a read only when the stat changed).
	PollInterval time.Duration
	// RecheckWindow is how long a pass that got a permanent answer watches
	// auth.json for a refresh token rotated by someone else (the CLI)
	// before it declares the credential dead; RecheckEvery is the re-read
	// period within it.
	RecheckWindow, RecheckEvery time.Duration
	// PID is written to the status file; 0 means os.Getpid().
	PID int
	// Redeeming, when set, is called once just before a refresh token is
	// sent. A one-shot process that leaves SIGTERM at its default action
	// (so that a pass with nothing to send never pays for signal handling)
	// shields itself here: from this point, dying would lose a token the
	// endpoint may already have redeemed.
	Redeeming func()
}

// Watchdog refreshes one credential ahead of expiry.
type Watchdog struct {
	cfg   Config
	store Store
	log   hclog.Logger
	loop  bool

	// State carried from pass to pass (the loop is single-threaded).
	failures    int
	lastErr     *RefreshError
	lastSuccess time.Time
	// shortWarned: the short-lifetime warning was logged (once is enough).
	shortWarned bool
	// pending is a refresh's answer that is not in the store yet (its
	// commit failed): the token it replaced is spent, so until pending is
	// written or superseded no POST is made.
	pending *AuthFile
	// unreadableSaid is the last unreadable auth.json reason logged.
	unreadableSaid string
	// deadToken is the SHA-256 of a refresh token the endpoint rejected
	// for good: it is never sent again. Only a hash is kept.
	deadToken [32]byte
	hasDead   bool

	// priming is set by StartPrime: Run first waits for that pass, then
	// for the check it scheduled.
	priming *Priming
}

// New checks cfg and fills in the defaults.
func New(cfg Config) (*Watchdog, error) {
	if cfg.Home.Dir == "" {
		return nil, errors.New("authwatch: CODEX_HOME directory is empty")
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy()
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("authwatch: %w", err)
	}
	if cfg.Owner && cfg.Endpoint == nil {
		return nil, errors.New("authwatch: a refresh owner needs a token endpoint")
	}
	// A refresh's commit must be durable when it returns (Home.DeferDirSync).
	if fs, ok := cfg.Store.(*FileStore); cfg.Home.DeferDirSync != nil || ok && fs.Home.DeferDirSync != nil {
		return nil, errors.New("authwatch: a Home that defers its directory fsync cannot refresh")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Jitter == nil {
		cfg.Jitter = defaultJitter
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.RecheckWindow < 0 {
		cfg.RecheckWindow = 0
	} else if cfg.RecheckWindow == 0 {
		cfg.RecheckWindow = DefaultRecheckWindow
	}
	if cfg.RecheckEvery <= 0 {
		cfg.RecheckEvery = DefaultRecheckEvery
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.StoreName == "" {
		cfg.StoreName = defaultStoreName
	}
	log := cfg.Logger.Named("authwatch")
	st := cfg.Store
	if st == nil {
		st = &FileStore{Home: cfg.Home, Logger: log}
	}
	return &Watchdog{cfg: cfg, store: st, log: log}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func defaultJitter(d time.Duration) time.Duration {
	max := time.Duration(float64(d) * jitterFraction)
	if max > maxJitter {
		max = maxJitter
	}
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}

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
	st.OutcomeCode = int(res.outcome)
	if w.loop {
		st.NextCheckAt = isoTime(res.next)
	}
	st.ConsecutiveFailures = w.failures
	if w.lastErr != nil {
		st.LastErrorClass = w.lastErr.Class.String()
		st.LastErrorKind = w.lastErr.Kind
		st.LastErrorCode = w.lastErr.Code
		st.LastHTTPStatus = w.lastErr.Status
		st.RetryAfterSeconds = int64(w.lastErr.RetryAfter / time.Second)
	}
	st.LastSuccessISO = isoTime(w.lastSuccess)
	return res, &st
}

// fillStatus copies the credential's token-free metadata into the status.
func fillStatus(st *Status, f *AuthFile, now time.Time) {
	if f == nil {
		return
	}
	st.AuthMode = string(f.Mode())
	st.LastRefresh = f.lastRefreshText()
	if lr, ok := f.LastRefresh(); ok {
		st.LastRefreshAgeSeconds = int64(now.Sub(lr) / time.Second)
	}
	if exp, ok := f.AccessExpiry(); ok {
		st.AccessTokenExpiresAt = isoTime(exp)
	}
	st.AccountID = f.AccountID()
	if f.Tokens().IDToken != "" {
		if c, err := ParseJWT(f.Tokens().IDToken); err == nil {
			st.PlanType = c.PlanType
		}
	}
	st.UnknownKeys = f.UnknownKeys()
}

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
		base.stamp = statStamp(home)
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
	return fileVersion{stamp: fileStamp{size: -1}, sum: sha256.Sum256(f.Marshal())}
}

// decideAndRefresh decides on cur, the credential load returned (or its
// error), and refreshes it when due.
func (w *Watchdog) decideAndRefresh(ctx context.Context, now time.Time, st *Status, cur *AuthFile, err error) passResult {
	p := w.cfg.Policy
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			st.WatchdogLastOutcome, st.Credential, st.Reason = "skip:unreadable", "unreadable", errText(err)
			w.log.Error("skip: auth.json is not readable; nothing is changed", "error", errText(err))
			return w.nothingToDo(now.Add(p.Interval))
		}
		if errors.Is(err, os.ErrPermission) {
			return w.unreadable(now, st, err)
		}
		re := &RefreshError{Class: ClassTransient, Kind: "load", Err: err}
		st.WatchdogLastOutcome, st.Credential, st.Reason = "fail:transient_load", "refreshing_failed", errText(err)
		w.log.Error("loading the credential failed", "error", errText(err))
		return w.transient(now, nil, re)
	}
	if cur == nil {
		st.WatchdogLastOutcome, st.Credential, st.Reason = "skip:no_auth_json", "absent", "no auth.json"
		w.log.Debug("skip: no auth.json (no ChatGPT login in this CODEX_HOME)", "path", w.cfg.Home.AuthPath())
		return w.nothingToDo(now.Add(p.Interval))
	}
	fillStatus(st, cur, now)
	if ok, why := cur.Refreshable(); !ok {
		st.WatchdogLastOutcome, st.Credential, st.Reason = "skip:not_refreshable", "not_refreshable", why
		w.log.Debug("skip: not a refreshable ChatGPT login", "mode", string(cur.Mode()), "reason", why)
		return w.nothingToDo(now.Add(p.Interval))
	}
	if w.isDead(cur) {
		st.WatchdogLastOutcome, st.Credential = "fail:permanent_dead_token", "dead"
		st.Reason = "the refresh token was rejected for good; waiting for a new login (auth.json to change)"
		w.log.Warn("credential dead: not spending the rejected refresh token again; waiting for a new login")
		return passResult{outcome: OutcomePermanent, err: w.lastErrOrDead(), next: now.Add(p.Interval)}
	}
	if w.pending != nil || w.rescueWaiting() {
		return w.writePending(ctx, now, st)
	}
	v := Decide(cur, now, p)
	if !v.Refresh {
		st.WatchdogLastOutcome, st.Credential, st.Reason = "skip", "ok", v.Reason
		w.log.Debug("no-op: credential fresh", "reason", v.Reason, "next_check", isoTime(v.NextCheck))
		return w.nothingToDo(v.NextCheck)
	}
	if !w.cfg.Owner {
		st.WatchdogLastOutcome, st.Credential = "skip:not_owner", "refresh_due"
		st.Reason = "refresh due (" + v.Reason + ") but this process is not the refresh owner"
		w.log.Warn("refresh due but not the refresh owner (CODEX_AUTH_REFRESH_OWNER=0); watching only", "reason", v.Reason)
		return w.nothingToDo(now.Add(minDur(p.Interval, w.cfg.MaxBackoff)))
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
		st.WatchdogLastOutcome, st.Credential, st.Reason = "skip:adopted", "ok", adopted
		if f == nil {
			st.Credential = "absent"
		} else if ok, _ := f.Refreshable(); !ok {
			st.Credential = "not_refreshable"
		}
		w.log.Debug("no-op: nothing to refresh after the locked re-read", "reason", adopted)
		return w.nothingToDo(Decide(f, after, p).NextCheck)
	case err == nil && committed != nil:
		w.failures, w.lastErr, w.lastSuccess, w.hasDead = 0, nil, after, false
		fillStatus(st, committed, after)
		st.WatchdogLastOutcome, st.Credential, st.Reason = "refreshed", "ok", why
		nv := Decide(committed, after, p)
		next := nv.NextCheck
		exp, _ := committed.AccessExpiry()
		if nv.Refresh {
			// A token with no lifetime to read that is already inside
			// the margin: do not spin, wait at least MinBackoff.
			next = after.Add(minDur(max(exp.Sub(after)/2, w.cfg.MinBackoff), p.Interval))
		}
		if m := EffectiveMargin(committed, p); m < p.SafetyMargin && !w.shortWarned {
			w.shortWarned = true
			w.log.Warn("refresh: access tokens live shorter than twice the safety margin; refreshing at half their life",
				"access_expires_at", isoTime(exp), "safety_margin", p.SafetyMargin, "effective_margin", m)
		}
		w.log.Info("refresh: ok", "access_expires_at", isoTime(exp), "rotated_refresh_token", committed.Tokens().RefreshToken != used, "next_check", isoTime(next))
		return passResult{outcome: OutcomeRefreshed, next: next, base: w.committedVersion(committed)}
	case errors.Is(err, ErrSuperseded):
		f, _ := w.store.Load(ctx)
		fillStatus(st, f, after)
		st.WatchdogLastOutcome, st.Credential = "skip:superseded", "ok"
		st.Reason = "a newer credential was written meanwhile; kept it"
		w.log.Warn("refresh: a newer credential appeared during our refresh; kept it and dropped ours", "error", errText(err))
		return w.nothingToDo(Decide(f, after, p).NextCheck)
	}
	re := asRefreshError(err, posted)
	if re.Class == ClassPermanent {
		if f := w.rotatedElsewhere(ctx, used); f != nil {
			seenAt := w.cfg.Now()
			fillStatus(st, f, seenAt)
			st.WatchdogLastOutcome, st.Credential = "skip:adopted", "ok"
			st.Reason = "the endpoint rejected our refresh token, but another writer (the CLI) had rotated it: credential alive"
			w.log.Info("refresh: token rejected but already rotated by another writer; adopted the new credential", "http_status", re.Status, "code", re.Code)
			return w.nothingToDo(Decide(f, seenAt, p).NextCheck)
		}
		w.failures++
		w.lastErr = re
		if used != "" {
			w.deadToken, w.hasDead = sha256.Sum256([]byte(used)), true
		}
		st.WatchdogLastOutcome, st.Credential = "fail:permanent_"+failTag(re), "dead"
		st.Reason = "refresh token rejected for good; someone must log in again (codex login) or re-inject CODEX_AUTH_JSON"
		w.log.Error("refresh: the token endpoint refused the refresh token for good: the login is dead; a new login is needed (codex login, as the agent user)", "http_status", re.Status, "code", re.Code, "kind", re.Kind)
		return passResult{outcome: OutcomePermanent, err: re, next: after.Add(p.Interval)}
	}
	st.WatchdogLastOutcome, st.Credential, st.Reason = "fail:transient_"+failTag(re), "refreshing_failed", re.Error()
	return w.transient(after, seen, re)
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
	st.WatchdogLastOutcome, st.Credential, st.Reason = "fail:transient_unreadable", "unreadable", why
	if w.unreadableSaid != why {
		w.unreadableSaid = why
		w.log.Warn("auth.json is unreadable; not refreshing", "reason", why, "error", errText(err))
	}
	w.failures++
	w.lastErr = &RefreshError{Class: ClassTransient, Kind: "unreadable", Err: err}
	return passResult{outcome: OutcomeTransient, err: w.lastErr, next: now.Add(w.backoff(now, nil, w.lastErr))}
}

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
		return &RefreshError{Class: ClassTransient, Kind: "unreadable", Err: err}
	case errors.As(err, new(*UnwrittenError)):
		return &RefreshError{Class: ClassTransient, Kind: KindCommit, Err: err}
	case errors.Is(err, ErrCannotCommit):
		return &RefreshError{Class: ClassTransient, Kind: KindCannotCommit, Err: err}
	case posted:
		return &RefreshError{Class: ClassTransient, Kind: KindCommit, Err: err}
	}
	return &RefreshError{Class: ClassTransient, Kind: "store", Err: err}
}

// transient records a transient failure and schedules the retry: capped
// exponential backoff from MinBackoff, at least Retry-After, and never so late
// that the access token expires first.
func (w *Watchdog) transient(now time.Time, f *AuthFile, re *RefreshError) passResult {
	w.failures++
	w.lastErr = re
	switch re.Kind {
	case KindCommit:
		w.log.Error("refresh: the new credential is not in auth.json yet; retrying the write (the old refresh token is spent and will not be sent again)", "error", errText(re.Err))
	case KindCannotCommit:
		w.log.Error("refresh: not refreshing, the new credential could not be written; fix CODEX_HOME", "error", errText(re.Err))
	default:
		w.log.Warn("refresh: transient failure; the credential is unchanged", "kind", re.Kind, "http_status", re.Status, "code", re.Code, "retry_after", re.RetryAfter, "failures", w.failures, "error", errText(re))
	}
	return passResult{outcome: OutcomeTransient, err: re, next: now.Add(w.backoff(now, f, re))}
}

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

func (w *Watchdog) nothingToDo(next time.Time) passResult {
	w.failures, w.lastErr = 0, nil
	return passResult{outcome: OutcomeNothingToDo, next: next}
}

func (w *Watchdog) isDead(f *AuthFile) bool {
	return w.hasDead && sha256.Sum256([]byte(f.Tokens().RefreshToken)) == w.deadToken
}

func (w *Watchdog) lastErrOrDead() error {
	if w.lastErr != nil && w.lastErr.Class == ClassPermanent {
		return w.lastErr
	}
	return &RefreshError{Class: ClassPermanent, Kind: "dead_token", Err: errors.New("refresh token previously rejected")}
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

// Run is the watchdog loop, until ctx is done (then it returns nil). It sleeps
// until the next check, wakes early when auth.json changes (a new login, or
// the CLI's own refresh), backs off after transient failures and, after a
// permanent one, waits for a new credential instead of spending the dead one.
func (w *Watchdog) Run(ctx context.Context) error {
	pr := w.priming
	if pr != nil {
		// The pass StartPrime began owns the watchdog's state until it
		// has written its status.
		w.priming = nil
		select {
		case <-pr.written:
		case <-ctx.Done():
			pr.Finish()
			return nil
		}
	}
	w.loop = true
	p := w.cfg.Policy
	w.log.Debug("watchdog: starting", "codex_home", w.cfg.Home.Dir, "interval", p.Interval, "safety_margin", p.SafetyMargin,
		"stale_after", p.StaleAfter, "owner", w.cfg.Owner, "store", w.cfg.StoreName)
	if pr != nil {
		// The prime has just passed: continue with its wait.
		w.wait(ctx, pr.res.next, pr.res.base)
	}
	for {
		if ctx.Err() != nil {
			w.log.Debug("watchdog: stopping")
			return nil
		}
		r := w.pass(ctx)
		if ctx.Err() != nil {
			w.log.Debug("watchdog: stopping")
			return nil
		}
		w.wait(ctx, r.next, r.base)
	}
}

// wait sleeps until next plus jitter, until auth.json differs from base, or
// until ctx is done.
func (w *Watchdog) wait(ctx context.Context, next time.Time, base fileVersion) {
	now := w.cfg.Now()
	if next.Before(now) {
		next = now
	}
	next = next.Add(w.cfg.Jitter(next.Sub(now)))
	if w.waitUntil(ctx, next, base) == errChanged {
		w.log.Debug("auth.json changed (a new login or the CLI's own refresh); deciding again")
	}
}

var errChanged = errors.New("auth.json changed")

// waitUntil sleeps until t in PollInterval steps, returning errChanged early
// when auth.json's content changed. Each poll is a stat; the file is read
// only when the stat moved.
func (w *Watchdog) waitUntil(ctx context.Context, t time.Time, base fileVersion) error {
	home := w.cfg.Home
	stamp, sum := base.stamp, base.sum
	for {
		d := t.Sub(w.cfg.Now())
		if d <= 0 {
			return nil
		}
		if err := w.cfg.Sleep(ctx, minDur(d, w.cfg.PollInterval)); err != nil {
			return err
		}
		if ns := statStamp(home); ns != stamp {
			stamp = ns
			if nsum := contentSum(home); nsum != sum {
				return errChanged
			}
		}
	}
}

// fileVersion is what a wait compares auth.json against.
type fileVersion struct {
	stamp fileStamp
	sum   [32]byte
}

func authVersion(h Home) fileVersion {
	return fileVersion{stamp: statStamp(h), sum: contentSum(h)}
}

// fileStamp identifies a version of auth.json cheaply. A negative size
// (committedVersion) matches no file: the next poll reads the contents.
type fileStamp struct{ ino, size, mtime int64 }

// statStamp is auth.json's stamp, the entry itself (a link is not followed).
func statStamp(h Home) fileStamp {
	st, err := h.Lstat(AuthFileName)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano()}
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

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
