package signals

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

type call struct {
	sig   syscall.Signal
	group bool
	stop  bool
}

// fakeTarget records what a Forwarder asks for.
type fakeTarget struct{ calls chan call }

func newFake() *fakeTarget { return &fakeTarget{calls: make(chan call, 4096)} }

func (f *fakeTarget) Signal(sig syscall.Signal, group bool) error {
	f.calls <- call{sig, group, false}
	return nil
}

func (f *fakeTarget) Stop(sig syscall.Signal, group bool) error {
	f.calls <- call{sig, group, true}
	return nil
}

func (f *fakeTarget) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no signal reached the target")
		return call{}
	}
}

func raise(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := unix.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

// runForwarder starts Run until the test ends, then closes f.
func runForwarder(t *testing.T, f *Forwarder, tg Target) {
	t.Helper()
	stop := startRun(f, tg)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
}

func runForwarderB(b *testing.B, f *Forwarder, tg Target) func() {
	stop := startRun(f, tg)
	return func() {
		if err := stop(); err != nil {
			b.Error(err)
		}
	}
}

// startRun starts Run, waits until it has taken over from the pump, and
// returns a function that ends it and closes f.
func startRun(f *Forwarder, tg Target) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, tg) }()
	for !f.running.Load() {
		time.Sleep(time.Millisecond)
	}
	return func() error {
		cancel()
		err := <-done
		f.Close()
		return err
	}
}

// wantEarlyStop waits for f to report want as the stop signal before Run.
func wantEarlyStop(t *testing.T, f *Forwarder, want syscall.Signal) {
	t.Helper()
	select {
	case sig := <-f.Stops():
		if sig != want {
			t.Fatalf("Stops gave %s, want %s", Name(sig), Name(want))
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s before Run was not reported on Stops", Name(want))
	}
}

func TestStopBeforeRunIsReportedAndDeliveredLater(t *testing.T) {
	var logs testenv.Buffer
	f := Listen(Options{Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})})
	ctx, release := f.StopContext(context.Background())
	defer release()

	// Not a stop signal: dropped, there is no child yet. The runtime does
	// not keep the order of two different signals, so TERM is sent only once
	// the loop has dropped USR1.
	raise(t, unix.SIGUSR1)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "dropped: signal=USR1"); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("USR1 before Run was not dropped; log:\n%s", logs.String())
		}
	}
	raise(t, unix.SIGTERM)
	wantEarlyStop(t, f, unix.SIGTERM)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("StopContext not cancelled by TERM")
	}
	var se *StopError
	if !errors.As(context.Cause(ctx), &se) || se.Signal != unix.SIGTERM || se.ExitCode() != 143 {
		t.Fatalf("cause = %v, want a StopError for TERM (exit 143)", context.Cause(ctx))
	}
	if sig, ok := f.Stopped(); !ok || sig != unix.SIGTERM {
		t.Fatalf("Stopped() = %s, %v", Name(sig), ok)
	}
	// A second StopContext after the fact is cancelled at once.
	ctx2, release2 := f.StopContext(context.Background())
	defer release2()
	if ctx2.Err() == nil {
		t.Fatal("StopContext after a stop signal must start cancelled")
	}

	tg := newFake()
	runForwarder(t, f, tg)
	if c := tg.next(t); c != (call{unix.SIGTERM, false, true}) {
		t.Fatalf("first call after Run = %+v, want the early TERM as a stop", c)
	}
	raise(t, unix.SIGWINCH)
	if c := tg.next(t); c != (call{unix.SIGWINCH, false, false}) {
		t.Fatalf("got %+v, want WINCH (the early USR1 must have been dropped)", c)
	}
}

// A stop signal outside the defaults is caught once ListenStopsFirst returns
// (USR2 is not among the signals registered at once: a ListenStopsFirst that
// did not wait would let it end the process), and one the launcher has
// Consumed is not delivered again by Run.
func TestConsumedEarlyStopIsNotDeliveredAgain(t *testing.T) {
	f := ListenStopsFirst(Options{StopSignals: []syscall.Signal{unix.SIGUSR2}})
	raise(t, unix.SIGUSR2)
	wantEarlyStop(t, f, unix.SIGUSR2)
	f.Consume()
	tg := newFake()
	runForwarder(t, f, tg)
	raise(t, unix.SIGWINCH)
	if c := tg.next(t); c.sig != unix.SIGWINCH {
		t.Fatalf("got %+v, want WINCH only", c)
	}
}

func TestDroppedStopSignalDoesNotStopThePrime(t *testing.T) {
	f := Listen(Options{Rewrite: Rewrite{unix.SIGINT: 0}})
	defer f.Close()
	stops := f.Stops()
	raise(t, unix.SIGINT) // a stop signal, but the table drops it
	raise(t, unix.SIGQUIT)
	select {
	case sig := <-stops:
		if sig != unix.SIGQUIT {
			t.Fatalf("Stops gave %s, want QUIT (INT is dropped by the rewrite)", Name(sig))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("QUIT not reported")
	}
}

func TestRunRewritesDropsAndStops(t *testing.T) {
	rw, err := ParseRewrite("TERM:INT,USR1:0,HUP:USR2")
	if err != nil {
		t.Fatal(err)
	}
	f := Listen(Options{Rewrite: rw, Group: true})
	tg := newFake()
	runForwarder(t, f, tg)

	raise(t, unix.SIGHUP)
	if c := tg.next(t); c != (call{unix.SIGUSR2, true, false}) {
		t.Fatalf("HUP: got %+v, want USR2 to the group", c)
	}
	raise(t, unix.SIGUSR1) // dropped by the rewrite
	raise(t, unix.SIGPIPE) // dropped
	// Fault signals sent by kill are caught and dropped: the Go runtime
	// would otherwise take them for a crash of the launcher.
	for _, s := range []syscall.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS} {
		raise(t, s)
	}
	raise(t, unix.SIGTERM) // a stop, rewritten to INT
	if c := tg.next(t); c != (call{unix.SIGINT, true, true}) {
		t.Fatalf("TERM: got %+v, want a stop with INT to the group", c)
	}
	raise(t, unix.SIGQUIT) // a stop, unchanged
	if c := tg.next(t); c != (call{unix.SIGQUIT, true, true}) {
		t.Fatalf("QUIT: got %+v", c)
	}
	raise(t, unix.SIGWINCH)
	if c := tg.next(t); c != (call{unix.SIGWINCH, true, false}) {
		t.Fatalf("WINCH: got %+v (USR1 and PIPE must be dropped)", c)
	}
}

func TestEveryForwardableSignalIsForwarded(t *testing.T) {
	f := Listen(Options{StopSignals: []syscall.Signal{}})
	tg := newFake()
	runForwarder(t, f, tg)
	for s := syscall.Signal(1); s <= maxSignal; s++ {
		if !Forwardable(s) {
			continue
		}
		raise(t, s)
		if c := tg.next(t); c != (call{s, false, false}) {
			t.Fatalf("%s: got %+v", Name(s), c)
		}
	}
}

func TestBurstDoesNotLoseTheStop(t *testing.T) {
	f := Listen(Options{})
	tg := newFake()
	runForwarder(t, f, tg)
	for i := 0; i < 1000; i++ {
		raise(t, unix.SIGUSR1)
	}
	raise(t, unix.SIGTERM)
	deadline := time.After(5 * time.Second)
	usr1 := 0
	for {
		select {
		case c := <-tg.calls:
			switch {
			case c.sig == unix.SIGUSR1 && !c.stop:
				usr1++
			case c == (call{unix.SIGTERM, false, true}):
				if usr1 == 0 {
					t.Error("no USR1 forwarded at all")
				}
				t.Logf("%d of 1000 USR1 forwarded (the kernel and runtime coalesce repeats)", usr1)
				return
			default:
				t.Fatalf("unexpected %+v", c)
			}
		case <-deadline:
			t.Fatal("TERM lost after a burst of USR1")
		}
	}
}

func TestRunTwice(t *testing.T) {
	f := Listen(Options{})
	tg := newFake()
	runForwarder(t, f, tg)
	if err := f.Run(context.Background(), tg); err == nil {
		t.Fatal("second Run must fail")
	}
}

// Signals that come while the child starts (after Hold, before Run gives the
// loop the child) are kept and forwarded, not dropped as before the child.
func TestHoldKeepsSignalsForTheChild(t *testing.T) {
	f := ListenStopsFirst(Options{})
	f.Hold()
	raise(t, unix.SIGUSR1)
	raise(t, unix.SIGTERM)
	// Both wait in the channel: the loop reads nothing while it holds.
	for deadline := time.Now().Add(5 * time.Second); len(f.ch) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d signals queued while holding, want 2 (the loop read them)", len(f.ch))
		}
	}
	if sig, ok := f.Stopped(); ok {
		t.Fatalf("a stop signal while the child starts was taken for one before it: %s", Name(sig))
	}
	tg := newFake()
	runForwarder(t, f, tg)
	got := map[call]bool{tg.next(t): true, tg.next(t): true}
	if !got[call{unix.SIGUSR1, false, false}] || !got[call{unix.SIGTERM, false, true}] {
		t.Fatalf("forwarded %v, want USR1 and TERM as a stop", got)
	}
}
