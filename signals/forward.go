// Package signals decides which signals codex-launch passes to its child,
// rewrites them on request (as dumb-init's -r), and runs the forwarding actor.
//
// The launcher must listen from its first instant: a container runtime may
// send SIGTERM while the launcher is still booting or priming the credential,
// before any child exists. Listen registers every forwardable signal at once;
// until Run attaches the child, a stop signal is reported on Stops (and
// remembered) and any other signal is dropped, since there is nobody to tell.
// Run then passes each signal on with no allocation and no logging above
// debug level, so forwarding stays cheap under a burst.
//
// Go limits what an init written in it can promise about signal state: the
// runtime installs its own handlers, so the child starts with every caught
// signal at its default action and an empty signal mask, whatever the
// launcher inherited (only an inherited ignore of signals the launcher does
// not catch survives). tini can pass an inherited ignore or block on; a Go
// launcher cannot.
package signals

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// DefaultBuffer is the channel size used when Options.Buffer is zero. The Go
// runtime coalesces repeats of one signal but queues distinct ones; the
// channel must hold a burst of distinct signals while one is being sent on,
// because signal.Notify drops what does not fit.
const DefaultBuffer = 1024

// Target is what signals are forwarded to: a *supervise.Supervisor.
type Target interface {
	// Signal sends sig to the child, or to its whole process group.
	Signal(sig syscall.Signal, group bool) error
	// Stop sends sig like Signal and arms the grace timer after which the
	// child's group is killed.
	Stop(sig syscall.Signal, group bool) error
}

// Options configure a Forwarder. The zero value forwards every forwardable
// signal unchanged to the child alone, with TERM, INT and QUIT as stop signals.
type Options struct {
	// Rewrite maps received signals to sent ones (0 drops).
	Rewrite Rewrite
	// Group sends to the child's whole process group instead of the child.
	Group bool
	// StopSignals are the received signals that mean "stop" (checked before
	// rewriting: a TERM rewritten to INT is still a stop). Nil means
	// DefaultStopSignals; an empty non-nil slice means none.
	StopSignals []syscall.Signal
	// Logger gets an info line for a stop signal before the child exists and
	// debug lines per signal; nil discards.
	Logger hclog.Logger
}

// Forwarder owns the process's signal registration.
type Forwarder struct {
	ch     chan os.Signal
	isStop [maxSignal + 1]bool
	opts   Options
	log    hclog.Logger

	registered chan struct{} // closed once every signal in Caught is registered

	handoff  chan struct{} // closed by Run to end the pre-run pump
	pumpDone chan struct{}
	runOnce  sync.Once
	running  atomic.Bool // Run has taken over from the pump (tests wait for it)

	mu       sync.Mutex
	early    syscall.Signal // first stop signal seen before Run
	subs     []chan syscall.Signal
	consumed bool // early already handed to a Target
}

// Listen registers for every signal in Caught now, and until Run is called
// watches them for stop signals (DefaultStopSignals until Configure says
// otherwise). Call it first thing in main, before parsing configuration.
// bufferSize 0 means DefaultBuffer.
func Listen(bufferSize int) *Forwarder {
	f := ListenStopsFirst(bufferSize)
	f.WaitRegistered()
	return f
}

// ListenStopsFirst is Listen for a launcher that has work to do before its
// child exists: it registers registeredFirst now and the rest of Caught in
// the background, and returns at once. The reason is cost: the Go runtime
// registers each signal with a round trip to its signal-mask thread (a
// thread hand-off each way), 30-50 µs per signal here, 2-3 ms for the ~60,
// which would otherwise all sit before boot. Until a signal is registered it
// gets the runtime's default action: for most that is nothing (and they are
// dropped before the child exists anyway), but for the stop signals and
// those whose default ends the program it is exit, so those are registered
// before this returns. Call WaitRegistered before starting the child; Run
// and a Configure naming other stop signals wait for it too.
func ListenStopsFirst(bufferSize int) *Forwarder {
	if bufferSize <= 0 {
		bufferSize = DefaultBuffer
	}
	f := &Forwarder{
		ch:         make(chan os.Signal, bufferSize),
		registered: make(chan struct{}),
		handoff:    make(chan struct{}),
		pumpDone:   make(chan struct{}),
	}
	f.Configure(Options{})
	var first []os.Signal
	for _, s := range registeredFirst() {
		first = append(first, s)
	}
	signal.Notify(f.ch, first...)
	go f.registerRest()
	go f.pump()
	return f
}

// registeredFirst are the signals ListenStopsFirst registers before it
// returns: the default stop signals, and those whose default in a Go program
// ends it (os/signal's package documentation): HUP exits, ABRT and STKFLT
// exit with a stack dump, a write to a stdout or stderr whose reader is gone
// dies of PIPE (boot logs from its first step), and the faults, when sent by
// kill, are taken for a crash (caughtToDrop).
func registeredFirst() []syscall.Signal {
	return append(append(DefaultStopSignals(), unix.SIGHUP, unix.SIGABRT, unix.SIGSTKFLT), caughtToDrop...)
}

// registerRest registers Caught, one Notify call per signal: os/signal holds
// its lock for a whole call, so another package's registration waits for one
// signal, not sixty. Those registered first come again: a no-op.
func (f *Forwarder) registerRest() {
	defer close(f.registered)
	for _, s := range Caught() {
		signal.Notify(f.ch, s)
	}
}

// WaitRegistered returns once every signal in Caught is registered: from
// then on none of them can end or bypass the launcher.
func (f *Forwarder) WaitRegistered() { <-f.registered }

// Configure sets the options once configuration has been read: the stop
// signals and logger apply at once (to the prime phase), the rest when Run
// starts. Stop signals that ListenStopsFirst did not register at once make
// it wait until every signal is registered. It must not be called after Run.
func (f *Forwarder) Configure(opts Options) {
	if opts.StopSignals == nil {
		opts.StopSignals = DefaultStopSignals()
	}
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var isStop [maxSignal + 1]bool
	for _, s := range opts.StopSignals {
		if s > 0 && int(s) < len(isStop) {
			isStop[s] = true
		}
	}
	if !allRegisteredFirst(opts.StopSignals) {
		// A configured stop signal must be caught from here on.
		f.WaitRegistered()
	}
	f.mu.Lock()
	f.opts, f.log, f.isStop = opts, log, isStop
	f.mu.Unlock()
}

// allRegisteredFirst reports whether every signal in stops is one that
// ListenStopsFirst registers at once.
func allRegisteredFirst(stops []syscall.Signal) bool {
	first := registeredFirst()
	for _, s := range stops {
		if !slices.Contains(first, s) {
			return false
		}
	}
	return true
}

// pump handles signals while no child exists.
func (f *Forwarder) pump() {
	defer close(f.pumpDone)
	for {
		select {
		case <-f.handoff:
			return
		case s := <-f.ch:
			sig := s.(syscall.Signal)
			f.mu.Lock()
			_, kept := f.opts.Rewrite.Apply(sig) // a stop signal rewritten to 0 is ignored
			stop, log := f.isStop[sig] && kept, f.log
			if !stop {
				f.mu.Unlock()
				log.Debug("signal before the child exists: dropped", "signal", Name(sig))
				continue
			}
			first := f.early == 0
			if first {
				f.early = sig
				for _, c := range f.subs {
					c <- sig // buffered 1, sent once
				}
				f.subs = nil
			}
			f.mu.Unlock()
			if first {
				log.Info("stop signal before the child exists", "signal", Name(sig))
			}
		}
	}
}

// Stops returns a channel that receives the first stop signal received
// before Run (at once if it came already); the launcher selects on it while
// booting and priming, and gives up promptly. Each call gets its own channel.
func (f *Forwarder) Stops() <-chan syscall.Signal {
	c := make(chan syscall.Signal, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.early != 0 {
		c <- f.early
	} else {
		f.subs = append(f.subs, c)
	}
	return c
}

// Stopped reports the first stop signal received before Run, if any.
func (f *Forwarder) Stopped() (syscall.Signal, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.early, f.early != 0
}

// StopContext returns a copy of parent that is cancelled when a stop signal
// arrives before Run (its cause is a *StopError), for bounding boot and prime.
// Call release when the phase is over.
func (f *Forwarder) StopContext(parent context.Context) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancelCause(parent)
	if sig, ok := f.Stopped(); ok {
		cancel(&StopError{Signal: sig})
		return ctx, func() { cancel(nil) }
	}
	stops := f.Stops()
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-stops:
			cancel(&StopError{Signal: sig})
		case <-done:
		case <-ctx.Done():
		}
	}()
	var once sync.Once
	return ctx, func() { once.Do(func() { close(done); cancel(nil) }) }
}

// StopError is the cancellation cause of a StopContext: a stop signal came
// before the child existed.
type StopError struct{ Signal syscall.Signal }

func (e *StopError) Error() string {
	return "stop signal " + Name(e.Signal) + " received before the child started"
}

// ExitCode is the conventional status for a launcher stopped by e: 128+N.
func (e *StopError) ExitCode() int { return 128 + int(e.Signal) }

// Run configures f with opts and forwards signals to t until ctx is done:
// the oklog/run actor's execute function (interrupt: cancel ctx). Start the
// child before calling Run. A stop signal that arrived before Run and was not
// Consumed is delivered to t first, so a TERM racing the child's start is
// never lost; any other signal that arrives before Run has taken over is
// dropped (there was no child to tell), so start Run right after the child.
// Run may be called once; later calls return an error.
func (f *Forwarder) Run(ctx context.Context, t Target, opts Options) error {
	first := false
	f.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("signals: Forwarder.Run called twice")
	}
	f.WaitRegistered()
	close(f.handoff)
	<-f.pumpDone
	f.Configure(opts)
	f.running.Store(true)

	f.mu.Lock()
	early, pending := f.early, f.early != 0 && !f.consumed
	f.consumed = true
	f.mu.Unlock()
	debug := f.log.IsDebug()
	if pending {
		f.forward(t, early, debug)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-f.ch:
			f.forward(t, s.(syscall.Signal), debug)
		}
	}
}

// Consume marks a pre-run stop signal as handled by the caller (for example
// the launcher exited the prime phase because of it and will not start the
// child), so Run does not deliver it again.
func (f *Forwarder) Consume() {
	f.mu.Lock()
	f.consumed = true
	f.mu.Unlock()
}

func (f *Forwarder) forward(t Target, sig syscall.Signal, debug bool) {
	if !Forwardable(sig) {
		return // PIPE, or a fault signal sent by kill: caught only to be dropped
	}
	out, ok := f.opts.Rewrite.Apply(sig)
	if !ok {
		if debug {
			f.log.Debug("signal dropped by rewrite", "signal", Name(sig))
		}
		return
	}
	var err error
	if f.isStop[sig] {
		err = t.Stop(out, f.opts.Group)
	} else {
		err = t.Signal(out, f.opts.Group)
	}
	if debug {
		f.log.Debug("signal forwarded", "received", Name(sig), "sent", Name(out), "group", f.opts.Group, "error", err)
	}
}

// Close stops receiving signals. Signals that arrive afterwards get the
// Go runtime's default handling, so call it only when the launcher is exiting.
func (f *Forwarder) Close() {
	signal.Stop(f.ch)
}
