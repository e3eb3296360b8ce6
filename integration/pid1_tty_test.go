package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// pid1TTY is `docker run -it`: the init is PID 1 of a namespace with a
// pseudo-terminal as its controlling terminal and stdio. A person types
// Ctrl-C (the interactive child reports SIGINT and goes on), Ctrl-Z (the
// child stops; the init should not), then the child is resumed (SIGCONT to
// the init, as `docker kill -s CONT` would), echoes a line, and "exit" ends
// it with 0.
func pid1TTY(t *testing.T, h *pid1Harness, in *pid1Init) string {
	argv, _ := in.argv(pid1Opts{})
	argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, append(argv, h.child, "interactive")...)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	tty.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			pid1KillTree(cmd.Process.Pid)
			<-done
		}
	})
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(screen.String(), s)
	}
	expect := func(s string, d time.Duration) bool {
		t.Helper()
		if !pid1WaitFor(d, func() bool { return seen(s) }) {
			mu.Lock()
			t.Errorf("terminal never showed %q; it shows:\n%s", s, screen.String())
			mu.Unlock()
			return false
		}
		return true
	}
	typeIn := func(s string) {
		if _, err := io.WriteString(ptmx, s); err != nil {
			t.Fatalf("type %q: %v", s, err)
		}
	}
	if !expect("ready pid=", 10*time.Second) {
		t.FailNow()
	}
	// Foreground: codex-launch and tini hand the terminal to the child's
	// group; dumb-init's child is in a new session without the terminal.
	fg := seen("foreground=true")
	if wantFG := in.name != pid1Dumb; fg != wantFG {
		t.Errorf("child in the terminal's foreground group: %v, want %v", fg, wantFG)
	}
	var cells []string
	cells = append(cells, fmt.Sprintf("child foreground: %v", fg))

	typeIn("\x03")
	if expect("got INT", 3*time.Second) {
		cells = append(cells, "Ctrl-C reaches it")
	}

	// Host pids: unshare → init → child.
	var initPid, childPid int
	pid1WaitFor(5*time.Second, func() bool {
		if k := pid1ChildrenOf(cmd.Process.Pid); len(k) > 0 {
			initPid = k[0]
			if k := pid1ChildrenOf(initPid); len(k) > 0 {
				childPid = k[0]
			}
		}
		return childPid != 0
	})
	if childPid == 0 {
		t.Fatalf("cannot find the init's child")
	}
	state := func(pid int) byte { st, _ := pid1ReadStat(pid); return st.state }
	typeIn("\x1a")
	if !pid1WaitFor(3*time.Second, func() bool { return state(childPid) == 'T' }) {
		t.Errorf("Ctrl-Z: child state %c, want stopped (T)", state(childPid))
	}
	time.Sleep(100 * time.Millisecond)
	initStopped := state(initPid) == 'T'
	// dumb-init sends itself SIGSTOP after forwarding TSTP, but the kernel
	// ignores that for a namespace's init: no init stays stopped as PID 1.
	if initStopped {
		t.Errorf("Ctrl-Z: the init (PID 1) stopped")
	}
	if initStopped {
		cells = append(cells, "Ctrl-Z stops the child and the init itself")
	} else {
		cells = append(cells, "Ctrl-Z stops the child, init stays")
	}
	if err := syscall.Kill(initPid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !pid1WaitFor(3*time.Second, func() bool { return state(childPid) != 'T' }) {
		t.Errorf("SIGCONT to the init did not resume the child")
	}
	typeIn("hello\n")
	if expect("echo: hello", 3*time.Second) {
		cells = append(cells, "CONT to init resumes it")
	}
	typeIn("exit\n")
	expect("bye", 3*time.Second)
	select {
	case <-done:
		if code := pid1Code(cmd.ProcessState, nil); code != 0 {
			t.Errorf("init exited %d, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("init still running after the child said bye")
	}
	return strings.Join(cells, "; ")
}
