package signals

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ListenStopsFirst catches the default stop signals before it returns (a TERM
// at once is reported, not fatal), and every other caught signal once
// WaitRegistered returns (a USR1 then is caught, not fatal).
func TestListenStopsFirst(t *testing.T) {
	f := ListenStopsFirst(0)
	raise(t, unix.SIGTERM)
	select {
	case sig := <-f.Stops():
		if sig != unix.SIGTERM {
			t.Fatalf("Stops gave %s, want TERM", Name(sig))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("TERM right after ListenStopsFirst was not reported")
	}
	f.WaitRegistered()
	raise(t, unix.SIGUSR1) // caught now: must not end the process
	tg := newFake()
	runForwarder(t, f, tg, Options{})
	if c := tg.next(t); c != (call{unix.SIGTERM, false, true}) {
		t.Fatalf("first call after Run = %+v, want the early TERM as a stop", c)
	}
	raise(t, unix.SIGWINCH)
	c := tg.next(t)
	if c == (call{unix.SIGUSR1, false, false}) {
		c = tg.next(t) // the pump had not read USR1 before Run took over
	}
	if c != (call{unix.SIGWINCH, false, false}) {
		t.Fatalf("got %+v, want WINCH", c)
	}
}
