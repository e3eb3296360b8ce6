// Package signals decides which signals codex-launch passes to its child,
// rewrites them on request (as dumb-init's -r), and runs the one signal loop.
//
// The launcher must listen from its first instant: a container runtime may
// send SIGTERM while the launcher is still booting or priming the credential,
// before any child exists. Listen registers every caught signal and starts the
// loop that reads them all until Close; it is the one place where a signal
// becomes an action. Before the child exists a stop signal is remembered and
// reported (Stops, StopContext) and any other is dropped, since there is
// nobody to tell. Run gives the loop the child; from then on each signal is
// rewritten and passed on with no allocation and no logging above debug
// level, so forwarding stays cheap under a burst.
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

// bufferSize is the signal channel's size. The Go runtime coalesces repeats
// of one signal but queues distinct ones; the channel must hold a burst of
// distinct signals while one is being sent on (and every signal that comes
// while the child starts, see Hold), because signal.Notify drops what does
// not fit.
const bufferSize = 1024

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

func (o Options) stops() []syscall.Signal {
	if o.StopSignals == nil {
		return DefaultStopSignals()
	}
	return o.StopSignals
}

// Forwarder owns the process's signal registration and the loop that acts
// on every signal.
type Forwarder struct {
	opts   Options // final: set when built
	isStop [maxSignal + 1]bool
	log    hclog.Logger
	debug  bool

	ch         chan os.Signal
	hold       chan struct{} // Hold: leave signals queued
	targets    chan Target   // Run: the child, then nil when Run ends
	quit       chan struct{} // closed by Close: the loop ends
	closeOnce  sync.Once
	registered chan struct{} // closed once every signal in Caught is registered
	runOnce    sync.Once
	running    atomic.Bool // Run has given the loop its target (tests wait for it)

	mu       sync.Mutex
	early    syscall.Signal // first stop signal seen before the child existed
	subs     []chan syscall.Signal
	consumed bool // early already handled: by the caller, or sent to the target
}

// Listen is ListenStopsFirst that returns only once every signal in Caught
// is registered.
func Listen(opts Options) *Forwarder {
	f := ListenStopsFirst(opts)
	f.WaitRegistered()
	return f
}

// ListenStopsFirst starts the signal loop with opts, for a launcher that has
// work to do before its child exists. It registers registeredFirst now and
// the rest of Caught in the background, and returns at once: the Go runtime
// registers each signal with a round trip to its signal-mask thread, which
// would otherwise all sit before boot. Until a signal is registered it gets
// the runtime's default action: for most that is nothing (and they are
// dropped before the child exists anyway), but for the stop signals and those
// whose default ends the program it is exit, so those are registered before
// this returns (and all of them when opts names other stop signals). Hold
// and Run wait for the rest.
func ListenStopsFirst(opts Options) *Forwarder {
	f := &Forwarder{
		ch:         make(chan os.Signal, bufferSize),
		hold:       make(chan struct{}),
		targets:    make(chan Target),
		quit:       make(chan struct{}),
		registered: make(chan struct{}),
		opts:       opts,
		log:        opts.Logger,
	}
	for _, s := range opts.stops() {
		if s > 0 && int(s) < len(f.isStop) {
			f.isStop[s] = true
		}
	}
	if f.log == nil {
		f.log = hclog.NewNullLogger()
	}
	f.debug = f.log.IsDebug()
	var first []os.Signal
	for _, s := range registeredFirst() {
		first = append(first, s)
	}
	signal.Notify(f.ch, first...)
	go f.registerRest()
	go f.run()
	if !allRegisteredFirst(opts.stops()) {
		f.WaitRegistered() // a configured stop signal must be caught from here on
	}
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

// run is the loop: every signal from the first registration to Close, one
// at a time. Before the child exists a stop signal is noted and any other
// dropped; after Hold signals stay queued; once Run gives it the child, a
// stop signal noted before (and not Consumed) goes to it first, then each
// signal as it comes; after Run, signals are dropped.
func (f *Forwarder) run() {
	var t Target
	in, ended := f.ch, false
	for {
		select {
		case s := <-in:
			sig := s.(syscall.Signal)
			switch {
			case t != nil:
				f.forward(t, sig)
			case !ended:
				f.beforeChild(sig)
			}
		case <-f.hold:
			in = nil
		case t = <-f.targets:
			in, ended = f.ch, t == nil
			f.mu.Lock()
			early, pending := f.early, f.early != 0 && !f.consumed
			f.consumed = true
			f.mu.Unlock()
			if t != nil && pending {
				f.forward(t, early)
			}
		case <-f.quit:
			return
		}
	}
}

// beforeChild remembers the first stop signal and tells those waiting for
// one; any other signal is dropped.
func (f *Forwarder) beforeChild(sig syscall.Signal) {
	_, kept := f.opts.Rewrite.Apply(sig) // a stop signal rewritten to 0 is ignored
	if !f.isStop[sig] || !kept {
		f.log.Debug("signal before the child exists: dropped", "signal", Name(sig))
		return
	}
	f.mu.Lock()
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
		f.log.Info("stop signal before the child exists", "signal", Name(sig))
	}
}

// forward passes sig on to t.
func (f *Forwarder) forward(t Target, sig syscall.Signal) {
	if !Forwardable(sig) {
		return // PIPE, or a fault signal sent by kill: caught only to be dropped
	}
	out, ok := f.opts.Rewrite.Apply(sig)
	if !ok {
		if f.debug {
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
	if f.debug {
		f.log.Debug("signal forwarded", "received", Name(sig), "sent", Name(out), "group", f.opts.Group, "error", err)
	}
}

// Stops returns a channel that receives the first stop signal received
// before the child existed (at once if it came already); the launcher selects
// on it while booting and priming, and gives up promptly. Each call gets its
// own channel.
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

// Stopped reports the first stop signal received before the child existed,
// if any.
func (f *Forwarder) Stopped() (syscall.Signal, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.early, f.early != 0
}

// StopContext returns a copy of parent that is cancelled when a stop signal
// arrives before the child exists (its cause is a *StopError), for bounding
// boot and prime. Call release when the phase is over.
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

// Consume marks a stop signal received before the child existed as handled
// by the caller (for example the launcher exits because of it and starts no
// child), so Run does not deliver it.
func (f *Forwarder) Consume() {
	f.mu.Lock()
	f.consumed = true
	f.mu.Unlock()
}

// Hold readies the loop for the child about to start: it returns once every
// signal is registered, and from then until Run gives the loop the child,
// signals stay queued instead of being dropped, so none that arrives while
// the child starts is lost. Call it right before starting the child.
func (f *Forwarder) Hold() {
	f.WaitRegistered()
	select {
	case f.hold <- struct{}{}:
	case <-f.quit:
	}
}

// Run gives the loop its target, t, and returns when ctx is done: the
// oklog/run actor's execute function (interrupt: cancel ctx). Start the child
// (after Hold) before calling Run. A stop signal that came before the child
// existed and was not Consumed goes to t first, so a TERM racing the child's
// start is never lost. After Run, signals are dropped: the launcher is
// exiting. Run may be called once; later calls return an error.
func (f *Forwarder) Run(ctx context.Context, t Target) error {
	first := false
	f.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("signals: Forwarder.Run called twice")
	}
	f.WaitRegistered()
	f.send(t)
	f.running.Store(true)
	select {
	case <-ctx.Done():
	case <-f.quit:
	}
	f.send(nil)
	return nil
}

// send gives the loop its target (nil: none any more).
func (f *Forwarder) send(t Target) {
	select {
	case f.targets <- t:
	case <-f.quit:
	}
}

// Close stops receiving signals and ends the loop. Signals that arrive
// afterwards get the Go runtime's default handling, so call it only when the
// launcher is exiting.
func (f *Forwarder) Close() {
	signal.Stop(f.ch)
	f.closeOnce.Do(func() { close(f.quit) })
}
