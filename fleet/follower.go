package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
)

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
		r, wake := f.takeRequest(time.Now())
		if r != nil {
			f.mu.Unlock()
			err := f.handle(conn, r)
			if errors.Is(err, pgstore.ErrLockBusy) {
				switch {
				case r.ctx.Err() != nil:
					err = fmt.Errorf("credential store update withdrawn while waiting for the lock: %w", r.ctx.Err())
				case f.park(r, time.Now()):
					continue
				default:
					err = fmt.Errorf("gave up after %v: %w", f.cfg.LockTimeout, err)
				}
			}
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
		if !wake.IsZero() {
			wait = min(wait, time.Until(wake))
		}
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
		case err == nil:
			err = f.syncStored(ctx, conn)
			nextPoll = f.nextPoll(time.Now())
		case !time.Now().Before(nextPoll):
			err = f.poll(ctx, conn)
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
