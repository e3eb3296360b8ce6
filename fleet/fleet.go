// Package fleet lets the launchers of many workspaces share one credential
// through PostgreSQL: exactly one of them refreshes each generation (under a
// row lock that dies with its connection), and every other one adopts the new
// generation into its own auth.json within seconds (LISTEN/NOTIFY, with a
// periodic read as a fallback). A credential that a workspace's CLI refreshed
// on its own is published at once, so nobody spends its old refresh token.
//
// A Fleet is two things: an authwatch.Store (Load/Update), so the authwatch
// watchdog runs on top of it unchanged, and a follower actor (Run) that owns
// the one database connection, keeps the local auth.json in step and
// reconnects with backoff when the database is away.
//
// Through a transaction pooler (Config.Pooled) there is no LISTEN: the
// follower polls, rarely while the stored generation is far from due and
// often (with jitter) from shortly before the moment its access token
// enters the refresh margin until a new generation appears, so a fleet of
// thousands learns of a refresh within seconds at a small steady load. While it is away the
// child keeps running on the local credential and nobody refreshes alone,
// unless the operator opted into Config.Fallback.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
	"github.com/molecule-ai/codex-launch/fleet/seal"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// ErrStoreUnavailable is wrapped by Update while the database cannot be
// reached: a transient condition, never a dead credential.
var ErrStoreUnavailable = errors.New("credential store unavailable")

// DefaultName is the credential name when none is configured.
const DefaultName = "default"

// Config configures a Fleet.
type Config struct {
	// URL is the PostgreSQL connection URL (postgres://...). Its password
	// is never logged.
	URL string
	// Name of the credential; several credentials can share one database.
	Name string
	// Keys seal the stored credential (nil: stored in clear).
	Keys *seal.Keyring
	// Home is this workspace's CODEX_HOME, kept in step with the store.
	Home authwatch.Home
	// Fallback lets this launcher refresh the local credential alone while
	// the database is away. Off by default: launchers sharing a credential
	// and refreshing alone spend each other's refresh tokens.
	Fallback bool
	// PollInterval is the fallback read when no notice came (default 30 s);
	// with Pooled, the read while no refresh is near.
	PollInterval time.Duration
	// Pooled: URL leads to a transaction pooler (PgBouncer in transaction
	// mode); see pgstore.Options.Pooled. The follower then polls on the
	// schedule of nextPoll instead of listening.
	Pooled bool
	// FastPollInterval is the read while a refresh is near or due (Pooled;
	// default 2 s, ±20 % jitter like every poll).
	FastPollInterval time.Duration
	// FastWindow is how long after the stored generation fell due the
	// follower keeps polling fast (Pooled; default 60 s: the refresher's
	// watchdog may start up to 30 s late, by its jitter).
	FastWindow time.Duration
	// Policy is the watchdogs' refresh policy: it says when the stored
	// generation falls due (default authwatch.DefaultPolicy()).
	Policy authwatch.Policy
	// LocalInterval is how often the local auth.json is looked at (a stat)
	// to catch a refresh made by the CLI itself (default 1 s).
	LocalInterval time.Duration
	// ReconnectMin and ReconnectMax bound the reconnect backoff
	// (defaults 250 ms and 10 s: a returning database is found within seconds; a connection attempt is cheap).
	ReconnectMin, ReconnectMax time.Duration
	// LockTimeout bounds a wait for another launcher's refresh lock.
	LockTimeout time.Duration
	// IdleTxTimeout ends the session of a refresher that holds the lock
	// but stops talking to the database (hung, or cut off) for this long,
	// so the lock cannot be held forever. It must exceed the token
	// endpoint's timeout (a POST runs while the lock is held). Default 2 min.
	IdleTxTimeout time.Duration
	// ConnectTimeout bounds one connection attempt (default 10 s).
	ConnectTimeout time.Duration
	// CallTimeout bounds each exchange with the database on a live
	// connection (default pgstore.DefaultCallTimeout): a server that stops
	// answering (a half-open connection) must not hold the follower, and
	// with it Update and the launcher's stop, until TCP keepalive gives up.
	CallTimeout time.Duration
	// By names this launcher in the store (who refreshed a generation).
	By     string
	Logger hclog.Logger
}

// State is what the follower knows about the store, for status and health.
type State struct {
	Store      string    // redacted URL and credential name
	State      string    // "connecting", "ok", "unavailable", "fallback", "error"
	Error      string    // password- and token-free; "" when ok
	Since      time.Time // when State last changed
	Generation int64     // stored generation last seen (0 unknown)
}

// Fleet is the shared store of one credential and its follower.
type Fleet struct {
	cfg  Config
	log  hclog.Logger
	desc string

	mu         sync.Mutex
	queue      []*request
	cancelWait context.CancelFunc
	state      State
	connected  bool
	stored     *authwatch.AuthFile
	changed    chan struct{}
	ready      chan struct{}
	readyOnce  sync.Once
	runDone    chan struct{}

	// stamp is the local auth.json as the follower last saw or wrote it,
	// dueSince when the stored generation was first seen due (zero: not
	// due). Only the follower goroutine (Run) touches them.
	stamp    fileStamp
	dueSince time.Time
}

type request struct {
	ctx  context.Context
	fn   func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error)
	done chan error
}

// New checks cfg and returns a Fleet; nothing connects before Run.
func New(cfg Config) (*Fleet, error) {
	if cfg.URL == "" {
		return nil, errors.New("credential store URL is empty")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Not echoed even redacted: a URL that does not parse cannot be
		// trusted to be redacted well.
		return nil, errors.New("credential store: not a postgres URL (value hidden)")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Home.Dir == "" {
		return nil, errors.New("fleet: CODEX_HOME is empty")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.FastPollInterval <= 0 {
		cfg.FastPollInterval = 2 * time.Second
	}
	if cfg.FastWindow <= 0 {
		cfg.FastWindow = time.Minute
	}
	if cfg.Policy == (authwatch.Policy{}) {
		cfg.Policy = authwatch.DefaultPolicy()
	}
	if cfg.LocalInterval <= 0 {
		cfg.LocalInterval = time.Second
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 250 * time.Millisecond
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = 10 * time.Second
		if cfg.ReconnectMax < cfg.ReconnectMin {
			cfg.ReconnectMax = cfg.ReconnectMin
		}
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = pgstore.DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.By == "" {
		host, _ := os.Hostname()
		cfg.By = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	desc := fmt.Sprintf("%s (credential %s)", secreturl.Mask(cfg.URL), cfg.Name)
	return &Fleet{
		cfg:     cfg,
		log:     cfg.Logger,
		desc:    desc,
		state:   State{Store: desc, State: "connecting", Since: time.Now()},
		changed: make(chan struct{}, 1),
		ready:   make(chan struct{}),
		runDone: make(chan struct{}),
	}, nil
}

// String describes the store without its password.
func (f *Fleet) String() string { return f.desc }

// State reports the follower's view of the store.
func (f *Fleet) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// Changed fires (coalesced) whenever State changes.
func (f *Fleet) Changed() <-chan struct{} { return f.changed }

// Ready is closed once the first attempt to reach the store and bring the
// local auth.json in step has finished, well or not. The launcher waits for
// it (bounded) before its prime pass, so the child starts on the fleet's
// newest generation.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

func (f *Fleet) markReady() { f.readyOnce.Do(func() { close(f.ready) }) }

func (f *Fleet) setState(state string, err error, gen int64) {
	f.mu.Lock()
	prev := f.state
	f.state.State = state
	f.state.Error = ""
	if err != nil {
		f.state.Error = secreturl.Mask(err.Error())
	}
	if gen > 0 {
		f.state.Generation = gen
	}
	if prev.State != f.state.State {
		f.state.Since = time.Now()
	}
	f.connected = state == "ok" || state == "error"
	changed := prev.State != f.state.State || prev.Error != f.state.Error || prev.Generation != f.state.Generation
	now := f.state
	f.mu.Unlock()
	if changed {
		f.writeState(now)
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}
}

func (f *Fleet) setStored(gen int64, a *authwatch.AuthFile) {
	f.mu.Lock()
	f.stored = a
	f.mu.Unlock()
	f.setState("ok", nil, gen)
}

// Run is the follower actor: it connects (migrating the schema), bootstraps
// or adopts the stored credential, then follows notices, polls as a fallback,
// watches the local auth.json and serves Update, reconnecting with backoff
// whenever the connection is lost. It returns nil when ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	defer close(f.runDone)
	defer f.markReady()
	backoff := f.cfg.ReconnectMin
	for ctx.Err() == nil {
		conn, err := f.connect(ctx)
		if err == nil {
			backoff = f.cfg.ReconnectMin
			err = f.serve(ctx, conn)
			conn.Close()
		}
		if ctx.Err() != nil {
			break
		}
		f.unavailable(err)
		f.markReady()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(backoff*2, f.cfg.ReconnectMax)
	}
	f.failQueue(fmt.Errorf("%w: launcher stopping", ErrStoreUnavailable))
	return nil
}

func (f *Fleet) unavailable(err error) {
	prev := f.State()
	state := "unavailable"
	if f.cfg.Fallback {
		state = "fallback"
	}
	f.setState(state, err, 0)
	if prev.State != state || prev.Error != f.State().Error {
		f.log.Warn("credential store unavailable; the child keeps the local credential",
			"store", f.desc, "error", f.State().Error, "fallback_refresh", f.cfg.Fallback)
	}
	f.failQueue(fmt.Errorf("%w: %s", ErrStoreUnavailable, f.State().Error))
}

func (f *Fleet) failQueue(err error) {
	f.mu.Lock()
	q := f.queue
	f.queue = nil
	f.mu.Unlock()
	for _, r := range q {
		r.done <- err
	}
}

func (f *Fleet) connect(ctx context.Context) (*pgstore.Conn, error) {
	timeout := f.cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgstore.Connect(cctx, f.cfg.URL, pgstore.Options{
		Keys: f.cfg.Keys, By: f.cfg.By, LockTimeout: f.cfg.LockTimeout, IdleTxTimeout: f.cfg.IdleTxTimeout,
		ConnectTimeout: timeout, CallTimeout: f.cfg.CallTimeout, Pooled: f.cfg.Pooled,
	})
	if err != nil {
		return nil, err
	}
	if f.cfg.Pooled {
		return conn, nil
	}
	if err := conn.Listen(cctx); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// serve runs on one live connection until it fails or ctx ends.
func (f *Fleet) serve(ctx context.Context, conn *pgstore.Conn) error {
	if err := f.syncStored(ctx, conn); err != nil {
		if conn.Lost(err) {
			return err
		}
		f.setState("error", err, 0)
		f.log.Error("credential store holds an unusable credential", "store", f.desc, "error", f.State().Error)
	}
	f.markReady()
	if prev := f.State(); prev.State == "ok" {
		f.log.Info("credential store connected", "store", f.desc, "generation", prev.Generation)
	}
	nextPoll := f.nextPoll(time.Now())
	for {
		f.mu.Lock()
		if len(f.queue) > 0 {
			r := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			err := f.handle(conn, r)
			lost := conn.Lost(err)
			if lost && err != nil {
				err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
			}
			r.done <- err
			if lost {
				return errors.New("connection lost")
			}
			continue
		}
		wait := min(f.cfg.LocalInterval, time.Until(nextPoll))
		wctx, cancel := context.WithTimeout(ctx, max(wait, time.Millisecond))
		f.cancelWait = cancel
		f.mu.Unlock()

		name, err := f.waitNotice(wctx, conn)
		f.mu.Lock()
		f.cancelWait = nil
		f.mu.Unlock()
		cancel()

		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil && name != f.cfg.Name:
			continue
		case err == nil || !time.Now().Before(nextPoll):
			err = f.syncStored(ctx, conn)
			nextPoll = f.nextPoll(time.Now())
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			err = f.checkLocal(ctx, conn)
		}
		if err != nil {
			if conn.Lost(err) || ctx.Err() != nil {
				return err
			}
			f.setState("error", err, 0)
			f.log.Error("credential store sync failed", "store", f.desc, "error", f.State().Error)
		}
	}
}

// waitNotice waits for a notice on conn until ctx ends; through a pooler
// (no LISTEN) it just waits.
func (f *Fleet) waitNotice(ctx context.Context, conn *pgstore.Conn) (string, error) {
	if f.cfg.Pooled {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return conn.WaitNotice(ctx)
}

// nextPoll is when the follower reads the stored generation next. Direct, it
// is every PollInterval (notices bring news at once). Pooled, polls are what
// bring news, so they follow the stored generation's due moment (Decide with
// the watchdogs' Policy): every PollInterval while it is far, every
// FastPollInterval from fastLead before it until a new generation appears
// (or FastWindow has passed: the refresh failed and its retries back off).
// Every interval gets ±20 % jitter, so launchers started together spread.
func (f *Fleet) nextPoll(now time.Time) time.Time {
	if !f.cfg.Pooled {
		return now.Add(f.cfg.PollInterval)
	}
	slow, fast := jitter(f.cfg.PollInterval), jitter(f.cfg.FastPollInterval)
	f.mu.Lock()
	stored := f.stored
	f.mu.Unlock()
	if stored == nil {
		return now.Add(slow)
	}
	p := f.cfg.Policy
	p.Interval = slow + fastLead // NextCheck: the due moment if it comes before then
	v := authwatch.Decide(stored, now, p)
	if v.Refresh {
		if f.dueSince.IsZero() {
			f.dueSince = now
		}
		if now.Sub(f.dueSince) < f.cfg.FastWindow {
			return now.Add(fast)
		}
		return now.Add(slow)
	}
	f.dueSince = time.Time{}
	if at := v.NextCheck.Add(-fastLead); at.Before(now.Add(slow)) {
		return maxTime(at, now.Add(fast))
	}
	return now.Add(slow)
}

// fastLead is how long before the due moment fast polling starts: hosts'
// clocks differ by a little, and a refresher may be a little early.
const fastLead = 5 * time.Second

func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Load is authwatch.Store's: the stored generation while the store is
// reachable, else the local auth.json the child runs on.
func (f *Fleet) Load(ctx context.Context) (*authwatch.AuthFile, error) {
	f.mu.Lock()
	stored, connected := f.stored, f.connected
	f.mu.Unlock()
	local, err := authwatch.NewFileStore(f.cfg.Home).Load(ctx)
	if connected && stored != nil {
		if err == nil && localNewer(local, stored) {
			return local, nil
		}
		return stored, nil
	}
	return local, err
}

// Update is authwatch.Store's: fn runs inside a database transaction that
// holds the credential's row lock, on the freshly re-read generation (or on
// the local credential when that is strictly newer: the CLI refreshed it and
// it was not published yet). Its result becomes the next generation and is
// written to the local auth.json. Another launcher waiting meanwhile sees
// the new generation and (deciding it fresh) makes no POST. When ctx ends
// before the follower has taken the request, it is withdrawn and Update
// returns at once; once taken, it is finished (a POST may be in flight).
func (f *Fleet) Update(ctx context.Context, fn func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error)) error {
	f.mu.Lock()
	connected := f.connected
	select {
	case <-f.runDone:
		connected = false
	default:
	}
	if !connected {
		st := f.state
		f.mu.Unlock()
		if f.cfg.Fallback {
			f.log.Warn("credential store unavailable: refreshing the local credential alone (fallback enabled)", "store", f.desc)
			return authwatch.NewFileStore(f.cfg.Home).Update(ctx, fn)
		}
		if st.Error == "" {
			st.Error = st.State
		}
		return fmt.Errorf("%w: %s", ErrStoreUnavailable, st.Error)
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	f.queue = append(f.queue, r)
	if f.cancelWait != nil {
		f.cancelWait()
	}
	f.mu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-f.runDone:
		return f.result(r)
	case <-ctx.Done():
	}
	if f.withdraw(r) {
		return fmt.Errorf("credential store update withdrawn before it ran: %w", ctx.Err())
	}
	// The follower has taken the request: its POST may be in flight, and a
	// redeemed refresh token must be stored, so it is waited for. That is
	// bounded: the request's ctx is done, so only a POST already sent (its
	// own timeout) and the write (CallTimeout) remain.
	select {
	case err := <-r.done:
		return err
	case <-f.runDone:
		return f.result(r)
	}
}

// result is r's answer once the follower has stopped.
func (f *Fleet) result(r *request) error {
	select {
	case err := <-r.done:
		return err
	default:
		return fmt.Errorf("%w: follower stopped", ErrStoreUnavailable)
	}
}

// withdraw removes r from the queue; false when the follower took it already.
func (f *Fleet) withdraw(r *request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, q := range f.queue {
		if q == r {
			f.queue = append(f.queue[:i:i], f.queue[i+1:]...)
			return true
		}
	}
	return false
}

// handle runs one Update on the follower's connection.
func (f *Fleet) handle(conn *pgstore.Conn, r *request) error {
	ctx := r.ctx
	if err := ctx.Err(); err != nil {
		return err
	}
	var produced *authwatch.AuthFile
	rec, err := conn.Locked(ctx, f.cfg.Name, func(ctx context.Context, cur *pgstore.Record) (*pgstore.New, error) {
		// Read under the lock: the wait for it may have been long, and the
		// CLI may have refreshed meanwhile.
		local, _, _ := f.cfg.Home.Read()
		var stored *authwatch.AuthFile
		if cur != nil {
			var err error
			if stored, err = authwatch.ParseAuthFile(cur.Data); err != nil {
				return nil, fmt.Errorf("stored credential %q generation %d: %w", f.cfg.Name, cur.Generation, err)
			}
		}
		rejected := cur != nil && !cur.RejectedAt.IsZero()
		base, publish := stored, false
		if supersedes(local, stored, rejected) {
			base, publish = local, true
		}
		if rejected && !publish {
			// Another launcher's refresh of this generation got a permanent
			// answer: its refresh token is dead, and spending a POST on it
			// again (from every launcher) would only repeat that.
			return nil, &authwatch.RefreshError{Class: authwatch.ClassPermanent, Kind: "rejected", Code: cur.RejectedCode,
				Err: fmt.Errorf("stored generation %d was rejected by the token endpoint for another launcher; waiting for a new login", cur.Generation)}
		}
		next, err := r.fn(ctx, base)
		if err != nil {
			var re *authwatch.RefreshError
			if !publish && cur != nil && errors.As(err, &re) && re.Class == authwatch.ClassPermanent {
				code := re.Code
				if code == "" {
					code = fmt.Sprintf("http_%d", re.Status)
				}
				return nil, &pgstore.Rejection{Code: code, Err: err}
			}
			return nil, err
		}
		if next == nil {
			if !publish {
				return nil, nil
			}
			next = base
		}
		produced = next
		return newGeneration(next), nil
	})
	if err != nil {
		if produced != nil {
			// The POST redeemed a token but the database did not take the
			// result. Keep it locally (the child needs it); it is newer than
			// the stored generation, so it is published once the store is back.
			if cerr := f.commitLocal(context.WithoutCancel(ctx), produced); cerr != nil {
				return fmt.Errorf("store write failed (%v) and local write failed: %w", redactErr(err), cerr)
			}
			f.log.Warn("new credential kept locally; it will be published when the store answers", "error", redactErr(err))
			return nil
		}
		return redactedError(err)
	}
	if produced == nil {
		if rec != nil && rec.Generation > f.State().Generation {
			// Another launcher's refresh, found under the lock: take it
			// now rather than at the next poll (through a pooler, seconds).
			if err := f.syncStored(ctx, conn); err != nil && !conn.Lost(err) {
				f.log.Debug("adopting the generation found under the lock failed; the next poll retries", "error", redactErr(err))
			}
		}
		return nil
	}
	f.setStored(rec.Generation, produced)
	f.log.Info("stored a new credential generation", "store", f.desc, "generation", rec.Generation)
	return f.commitLocal(context.WithoutCancel(ctx), produced)
}

func newGeneration(a *authwatch.AuthFile) *pgstore.New {
	lr, _ := a.LastRefresh()
	return &pgstore.New{AccountID: a.AccountID(), LastRefresh: lr, Data: a.Marshal()}
}

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

func redactErr(err error) string { return secreturl.Mask(err.Error()) }

// redactedError keeps err's identity (errors.Is) with a password-free text.
func redactedError(err error) error {
	if err == nil {
		return nil
	}
	msg := redactErr(err)
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
