package signals

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ListenStopsFirst catches the default stop signals before it returns (a TERM
// at once is reported, not fatal), and every other caught signal once
// WaitRegistered returns (a USR1 then is caught, not fatal).
func TestListenStopsFirst(t *testing.T) {
	f := ListenStopsFirst(Options{})
	raise(t, unix.SIGTERM)
	wantEarlyStop(t, f, unix.SIGTERM)
	f.WaitRegistered()
	raise(t, unix.SIGUSR1) // caught now: must not end the process
	tg := newFake()
	runForwarder(t, f, tg)
	if c := tg.next(t); c != (call{unix.SIGTERM, false, true}) {
		t.Fatalf("first call after Run = %+v, want the early TERM as a stop", c)
	}
	raise(t, unix.SIGWINCH)
	c := tg.next(t)
	if c == (call{unix.SIGUSR1, false, false}) {
		c = tg.next(t) // the loop had not dropped USR1 before Run gave it the target
	}
	if c != (call{unix.SIGWINCH, false, false}) {
		t.Fatalf("got %+v, want WINCH", c)
	}
}

// What would end the launcher by default is caught before ListenStopsFirst
// returns, not only the stop signals: boot's first log line on a stderr
// whose reader is gone must not kill it with SIGPIPE, nor must a HUP in its
// first milliseconds. Run in a child process, since a failure ends it.
func TestListenStopsFirstCatchesWhatWouldEndTheLauncher(t *testing.T) {
	if os.Getenv("SIGNALS_TEST_EARLY_CHILD") == "1" {
		ListenStopsFirst(Options{})
		fmt.Fprintln(os.Stderr, "boot line") // the pipe has no reader
		raise(t, unix.SIGHUP)
		time.Sleep(20 * time.Millisecond) // time for a HUP left at its default to end the process
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenStopsFirstCatchesWhatWouldEndTheLauncher$")
	cmd.Env = append(os.Environ(), "SIGNALS_TEST_EARLY_CHILD=1")
	cmd.Stderr = w
	err = cmd.Run()
	w.Close()
	if err != nil {
		t.Fatalf("a launcher that had just called ListenStopsFirst did not survive a closed stderr and a HUP: %v", err)
	}
}
