package supervise

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// term is the master side of a pseudo-terminal with everything read so far.
type term struct {
	f   *os.File
	mu  sync.Mutex
	out strings.Builder
}

func startOnPTY(t *testing.T, cmd *exec.Cmd) *term {
	t.Helper()
	f, err := pty.Start(cmd) // the helper is a session leader with the pty as its terminal
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	tm := &term{f: f}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			tm.mu.Lock()
			tm.out.Write(buf[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { f.Close() })
	return tm
}

// expect waits until the terminal has shown want (after skip bytes).
func (tm *term) expect(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tm.mu.Lock()
		s := tm.out.String()
		tm.mu.Unlock()
		if strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; it shows %q", want, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tm *term) count(want string) int {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return strings.Count(tm.out.String(), want)
}

func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		cmd.Process.Kill()
		t.Fatalf("launcher did not exit within %v", timeout)
		return -1
	}
}

func TestForegroundCtrlCReachesChild(t *testing.T) {
	cmd := helperCmd("tty")
	tm := startOnPTY(t, cmd)
	tm.expect(t, "child ready", 10*time.Second)
	if _, err := tm.f.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	code := waitExit(t, cmd, 10*time.Second)
	tm.expect(t, "launcher code=130", 2*time.Second)
	tm.expect(t, "restored=true", time.Second)
	if code != 130 {
		t.Fatalf("launcher exit %d, want 130", code)
	}
}

func TestForegroundChildOwnsTerminal(t *testing.T) {
	// The child reads its terminal's foreground group from /proc (field 8)
	// and compares it with its own group (field 5).
	script := `set -- $(sed 's/.*) //' /proc/$$/stat); echo "tpgid=$6 pgrp=$3"; [ "$6" = "$3" ] && echo OWNS || echo NOTOWNER`
	cmd := helperCmd("tty", "ARGV="+script)
	tm := startOnPTY(t, cmd)
	code := waitExit(t, cmd, 10*time.Second)
	tm.expect(t, "launcher code=0", 2*time.Second)
	if tm.count("OWNS") != 1 || code != 0 {
		t.Fatalf("child was not in the foreground (exit %d)", code)
	}
	tm.expect(t, "restored=true", time.Second)
}

func TestJobControlStopsAndResumesLikeAJob(t *testing.T) {
	// A Go ticker, not a shell loop: dash forks its commands with vfork,
	// and a vfork child stopped before exec leaves the shell in an
	// unstoppable wait, so the main child would never report a stop.
	script := `exec "$0" -test.run='^$'`
	cmd := helperCmd("tty", "ARGV="+script, "TICKER=1")
	tm := startOnPTY(t, cmd)
	tm.expect(t, "tick", 10*time.Second)
	if _, err := tm.f.Write([]byte{26}); err != nil { // Ctrl-Z: TSTP to the child's group
		t.Fatal(err)
	}
	// The launcher takes the terminal back and stops itself, as a job would,
	// so a shell above it would report it stopped.
	pid := cmd.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for procState(pid) != 'T' {
		if time.Now().After(deadline) {
			t.Fatalf("launcher state %q after Ctrl-Z, want T (stopped)", procState(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	ticks := tm.count("tick")
	time.Sleep(200 * time.Millisecond)
	if tm.count("tick") > ticks+1 {
		t.Fatal("the child kept running while stopped")
	}
	// `fg`: the shell would continue the launcher's group.
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ticks = tm.count("tick")
	deadline = time.Now().Add(5 * time.Second)
	for tm.count("tick") < ticks+3 {
		if time.Now().After(deadline) {
			t.Fatal("the child did not resume after the launcher was continued")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// It has the terminal again: Ctrl-C reaches it.
	if _, err := tm.f.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 10*time.Second); code != 130 {
		t.Fatalf("launcher exit %d after Ctrl-C, want 130", code)
	}
	tm.expect(t, "restored=true", time.Second)
}
