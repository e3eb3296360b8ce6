package authwatch

import (
	"context"
	"runtime"
)

// Priming is a prime pass running in its own goroutine (StartPrime).
type Priming struct {
	cancel  context.CancelFunc
	done    chan struct{} // res is set
	written chan struct{} // and the status file is written
	// res is the pass's result: its outcome for Result, and the wait it
	// scheduled for Run to continue with once written is closed.
	res passResult
}

// StartPrime runs the first pass of the loop that Run then continues, in its
// own goroutine, and returns at once. It is for a launcher that must know the
// credential's state before it starts the child, and bounds how long the
// child waits for it (a timer beside Done), while a POST already sent always
// runs to its commit, beside the child if need be. The outcome is known when
// Done is closed; the status file, written as the loop writes it, comes after
// that, while the caller starts its child (the file tells a child nothing).
//
// Run, called after StartPrime, first waits for the whole pass, and then for
// the next check the pass scheduled instead of passing again at once: a
// second read of auth.json and a second status write while the child starts
// would learn nothing. Run still re-decides early when someone else (the
// CLI, a new login) rewrites auth.json, even while this pass was deciding.
// On a path that never reaches Run, call Finish: it abandons what can be
// abandoned (a lock wait, a POST not yet sent) and waits for the rest. Call
// StartPrime once, before Run.
func (w *Watchdog) StartPrime() *Priming {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Priming{cancel: cancel, done: make(chan struct{}), written: make(chan struct{})}
	w.priming = p
	w.loop = true
	go func() {
		defer close(p.written)
		var st *Status
		p.res, st = w.decidePass(ctx)
		close(p.done)
		// Hand the processor to whoever waits on Done, a launcher about to
		// start its child: a goroutine woken by this one would otherwise
		// wait for the status write (~0.3 ms) to finish first.
		runtime.Gosched()
		w.writeStatus(st)
	}()
	return p
}

// Done is closed once the pass's outcome is known.
func (p *Priming) Done() <-chan struct{} { return p.done }

// Result is the pass's outcome, as Pass would return it; it waits for Done.
func (p *Priming) Result() (Outcome, error) {
	<-p.done
	return p.res.outcome, p.res.err
}

// Finish cancels what can be abandoned and waits until the pass, its commit
// and its status file are done. It may be called more than once.
func (p *Priming) Finish() {
	p.cancel()
	<-p.written
}
