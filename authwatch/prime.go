package authwatch

import (
	"context"
	"runtime"
	"time"
)

// primePass is a prime pass running in its own goroutine (startPrime).
type primePass struct {
	cancel  context.CancelFunc
	done    chan struct{} // res is set
	written chan struct{} // and the status file is written
	// res is the pass's result: its outcome for Prime, and the wait it
	// scheduled for Run to continue with once written is closed.
	res passResult
}

// startPrime runs the loop's first pass in its own goroutine and returns at
// once: the outcome is known when done is closed, the status file is
// written after that, beside the caller's child start. Run then waits for
// the whole pass and continues with the check it scheduled (auth.json
// rewritten meanwhile still wakes it); a caller that never reaches Run
// calls finish.
func (w *Watchdog) startPrime() *primePass {
	ctx, cancel := context.WithCancel(context.Background())
	p := &primePass{cancel: cancel, done: make(chan struct{}), written: make(chan struct{})}
	w.priming = p
	w.loop = true
	go func() {
		defer close(p.written)
		var st *Status
		p.res, st = w.decidePass(ctx)
		close(p.done)
		// Hand the processor to whoever waits on done, a launcher about to
		// start its child: a goroutine woken by this one would otherwise
		// wait for the status write to finish first.
		runtime.Gosched()
		w.writeStatus(st)
	}()
	return p
}

// finish cancels what can be abandoned and waits until the pass, its commit
// and its status file are done. It may be called more than once.
func (p *primePass) finish() {
	p.cancel()
	<-p.written
}

// PrimeResult is what the prime tells a launcher about to start its child.
type PrimeResult struct {
	// Outcome and Err are the pass's, as Pass returns them; meaningless
	// while Pending.
	Outcome Outcome
	Err     error
	// Pending: the pass outlasted the deadline and goes on beside the
	// child; Run continues it.
	Pending bool
}

// Dead reports a credential the token endpoint refused for good.
func (r PrimeResult) Dead() bool { return !r.Pending && r.Outcome == OutcomePermanent }

// Prime runs the loop's first pass (startPrime) and waits for its outcome
// until by, or until ctx is done (a stop signal), when it abandons what can
// be abandoned and waits for the rest: a POST already sent is committed
// before Prime returns. Run continues a pass still pending; a caller that
// will not call Run calls Close.
func (w *Watchdog) Prime(ctx context.Context, by time.Time) PrimeResult {
	p := w.startPrime()
	t := time.NewTimer(max(time.Until(by), 0))
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		return PrimeResult{Pending: true}
	case <-ctx.Done():
		select {
		case <-p.done:
		default:
			w.log.Info("stop signal during the prime: finishing the refresh in flight so no redeemed token is lost (at most --refresh-timeout)")
		}
		p.finish()
	}
	w.log.Debug("prime done", "outcome", p.res.outcome.String(), "error", errText(p.res.err))
	return PrimeResult{Outcome: p.res.outcome, Err: p.res.err}
}

// Close finishes a prime pass that Run has not taken over (see finish). It
// may be called more than once, and after Run has returned.
func (w *Watchdog) Close() {
	if w.priming != nil {
		w.priming.finish()
	}
}
