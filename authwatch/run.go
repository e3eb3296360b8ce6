package authwatch

import (
	"context"
	"time"
)

// Run is the watchdog loop, until ctx is done (then it returns nil). It sleeps
// until the next check, wakes early when auth.json changes (a new login, or
// the CLI's own refresh), backs off after transient failures and, after a
// permanent one, waits for a new credential instead of spending the dead one.
func (w *Watchdog) Run(ctx context.Context) error {
	pr := w.priming
	if pr != nil {
		// The pass startPrime began owns the watchdog's state until it
		// has written its status.
		w.priming = nil
		select {
		case <-pr.written:
		case <-ctx.Done():
			pr.finish()
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
	for ctx.Err() == nil {
		r := w.pass(ctx)
		if ctx.Err() != nil {
			break
		}
		w.wait(ctx, r.next, r.base)
	}
	w.log.Debug("watchdog: stopping")
	return nil
}

// wait sleeps until next plus jitter, until auth.json's content differs from
// base, or until ctx is done. It looks in PollInterval steps: each a stat,
// and a read only when the stat moved.
func (w *Watchdog) wait(ctx context.Context, next time.Time, base fileVersion) {
	now := w.cfg.Now()
	if next.Before(now) {
		next = now
	}
	next = next.Add(w.cfg.Jitter(next.Sub(now)))
	for {
		d := next.Sub(w.cfg.Now())
		if d <= 0 || w.cfg.Sleep(ctx, min(d, w.cfg.PollInterval)) != nil {
			return
		}
		if ns := w.cfg.Home.Stamp(); ns != base.stamp {
			base.stamp = ns
			if contentSum(w.cfg.Home) != base.sum {
				w.log.Debug("auth.json changed (a new login or the CLI's own refresh); deciding again")
				return
			}
		}
	}
}
