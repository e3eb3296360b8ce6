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

	"github.com/molecule-ai/codex-launch/internal/procstat"
	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// pid1TTY is `docker run -it`: the init is PID 1 of a namespace with a
// pseudo-terminal as its controlling terminal and stdio. A person types
// Ctrl-C (the interactive child reports SIGINT and goes on) and Ctrl-Z: the
// child stops and the init does not. tini and dumb-init leave it stopped
// until someone sends SIGCONT (here to the init, as `docker kill -s CONT`
// would); codex-launch continues it at once. Then the child echoes a line,
// and "exit" ends it with 0.
//
// The same follows not as PID 1, under a parent playing the interactive
// shell (session leader on the terminal): there codex-launch and dumb-init
// stop themselves like a job after Ctrl-Z, and SIGCONT (what `fg` sends)
// resumes the init and, through it, the child.
func pid1TTY(t *testing.T, h *pid1Harness, in *pid1Init) string {
	var cells []string
	for _, ns := range []bool{true, false} {
		where := "PID 1: "
		if !ns {
			where = "not PID 1: "
		}
		cells = append(cells, where+pid1TTYRun(t, h, in, ns))
	}
	return strings.Join(cells, " / ")
}

func pid1TTYRun(t *testing.T, h *pid1Harness, in *pid1Init, ns bool) string {
	argv, _ := in.argv(pid1Opts{subreaper: true})
	argv = append(argv, h.child, "interactive")
	if ns {
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	} else {
		argv = append([]string{h.child, "shim", "-job", "--"}, argv...)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), in.env...)
	if in.ownHome {
		cmd.Env = append(cmd.Env, "CODEX_HOME="+pid1Home(t))
	}
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

	// Host pids: unshare (or the shim) → init → child.
	var initPid, childPid int
	pid1WaitFor(5*time.Second, func() bool {
		if k := testenv.ChildrenOf(cmd.Process.Pid); len(k) > 0 {
			initPid = k[0]
			if k := testenv.ChildrenOf(initPid); len(k) > 0 {
				childPid = k[0]
			}
		}
		return childPid != 0
	})
	if childPid == 0 {
		t.Fatalf("cannot find the init's child")
	}
	state := func(pid int) byte { st, _ := readProcStat(pid); return st.State }
	typeIn("\x1a")
	// Who stops on Ctrl-Z: the child always; the init too when it behaves as
	// a job under a shell (not PID 1: codex-launch and dumb-init). As PID 1,
	// codex-launch continues the child at once, having no shell above it.
	autoResume := in.name == pid1Launcher && ns
	initStops := !ns && in.name != pid1Tini
	if autoResume {
		if !expect("got CONT", 3*time.Second) {
			t.Errorf("child after Ctrl-Z: %s", pid1Diag(childPid))
		}
		if state(initPid) == 'T' {
			t.Errorf("Ctrl-Z: the init (PID 1) stopped")
		}
		cells = append(cells, "Ctrl-Z: child stopped and continued at once (no shell above PID 1)")
	} else {
		if !pid1WaitFor(3*time.Second, func() bool { return state(childPid) == 'T' }) {
			t.Errorf("Ctrl-Z: child state %c, want stopped (T)\nchild: %s\ninit: %s", state(childPid), pid1Diag(childPid), pid1Diag(initPid))
		}
		pid1WaitFor(time.Second, func() bool { return (state(initPid) == 'T') == initStops })
		time.Sleep(100 * time.Millisecond)
		// dumb-init's SIGSTOP to itself is ignored for a namespace's init.
		if got := state(initPid) == 'T'; got != initStops {
			t.Errorf("Ctrl-Z: init stopped %v, want %v", got, initStops)
		}
		if state(childPid) != 'T' {
			t.Errorf("Ctrl-Z: the child did not stay stopped")
		}
		if initStops {
			cells = append(cells, "Ctrl-Z: child and init stop like a job")
		} else {
			cells = append(cells, "Ctrl-Z: child stays stopped, init runs")
		}
		if err := syscall.Kill(initPid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if !pid1WaitFor(3*time.Second, func() bool { return state(childPid) != 'T' }) {
			t.Errorf("SIGCONT to the init did not resume the child")
		}
		cells = append(cells, "CONT to the init resumes it")
	}
	typeIn("hello\n")
	expect("echo: hello", 3*time.Second)
	typeIn("exit\n")
	expect("bye", 3*time.Second)
	select {
	case <-done:
		if code := pid1Code(cmd.ProcessState); code != 0 {
			t.Errorf("init exited %d, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("init still running after the child said bye")
	}
	return strings.Join(cells, "; ")
}

// pid1Diag is what a failure needs to know about a process: its group,
// session and terminal's foreground group, and its signal masks.
func pid1Diag(pid int) string {
	st, err := procstat.Read(pid)
	if err != nil {
		return err.Error()
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var masks []string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Sig") || strings.HasPrefix(l, "ShdPnd") {
			masks = append(masks, l)
		}
	}
	return fmt.Sprintf("state=%c ppid=%d pgrp=%d session=%d tty=%d tpgid=%d %s",
		st.State, st.PPid, st.Pgrp, st.Session, st.TTY, st.TPGID, strings.Join(masks, " "))
}
