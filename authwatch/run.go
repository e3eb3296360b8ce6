package authwatch

import (
	"context"
	"errors"
	"time"
)

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
