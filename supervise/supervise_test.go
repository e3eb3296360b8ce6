package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"golang.org/x/sys/unix"
)

// run starts argv under a new Supervisor and waits for it.
func run(t *testing.T, opts Options, spec Spec) (int, time.Duration) {
	t.Helper()
	sup, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	start := time.Now()
	if err := sup.Start(spec); err != nil {
		t.Fatalf("Start(%q): %v", spec.Argv, err)
	}
	code, err := sup.Wait(context.Background())
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return code, time.Since(start)
}

func sh(script string, args ...string) []string {
	return append([]string{"/bin/sh", "-c", script}, args...)
}

func TestExitCodeFromStatus(t *testing.T) {
	for n := 0; n <= 255; n++ {
		ws := unix.WaitStatus(n << 8)
		if got := ExitCode(ws); got != n {
			t.Errorf("exit %d: ExitCode = %d", n, got)
		}
	}
	for s := 1; s <= 64; s++ {
		if s == int(unix.SIGSTOP) {
			continue // 0x7f is the "stopped" marker, not a termination
		}
		for _, core := range []int{0, 0x80} {
			ws := unix.WaitStatus(s | core)
			if !ws.Signaled() {
				t.Fatalf("status %#x should be signalled", s|core)
			}
			if got := ExitCode(ws); got != 128+s {
				t.Errorf("signal %d (core %v): ExitCode = %d, want %d", s, core != 0, got, 128+s)
			}
		}
	}
	if got := ExitCode(unix.WaitStatus(0x137f)); got != 255 { // stopped by SIGSTOP
		t.Errorf("stopped: ExitCode = %d, want 255", got)
	}
}

func TestExitCodesOfRealChildren(t *testing.T) {
	for n := 0; n <= 255; n++ {
		if code, _ := run(t, Options{}, Spec{Argv: sh(fmt.Sprintf("exit %d", n))}); code != n {
			t.Errorf("sh -c 'exit %d' gave %d", n, code)
		}
	}
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGKILL, unix.SIGSEGV, unix.SIGUSR1, unix.SIGABRT} {
		code, _ := run(t, Options{}, Spec{Argv: sh(fmt.Sprintf("kill -%d $$; sleep 5", sig))})
		if code != 128+int(sig) {
			t.Errorf("child killed by signal %d gave %d, want %d", sig, code, 128+int(sig))
		}
	}
}

func TestZeroExitCodes(t *testing.T) {
	opts := Options{ZeroExitCodes: []int{143, 3}}
	for script, want := range map[string]int{"kill -TERM $$; sleep 5": 0, "exit 3": 0, "exit 143": 0, "exit 4": 4, "kill -INT $$; sleep 5": 130} {
		if code, _ := run(t, opts, Spec{Argv: sh(script)}); code != want {
			t.Errorf("%q with ZeroExitCodes %v gave %d, want %d", script, opts.ZeroExitCodes, code, want)
		}
	}
	if _, err := New(Options{ZeroExitCodes: []int{256}}); err == nil {
		t.Error("ZeroExitCodes 256 must be refused")
	}
	if _, err := New(Options{StopTimeout: -time.Second}); err == nil {
		t.Error("negative StopTimeout must be refused")
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte{0, 1, 2, 3, 4, 5, 6, 7}, 0o755)
	sub := filepath.Join(dir, "subdir")
	os.Mkdir(sub, 0o755)
	pathDir := filepath.Join(dir, "bin")
	os.Mkdir(pathDir, 0o755)
	os.WriteFile(filepath.Join(pathDir, "onlyhere"), []byte("#!/bin/sh\nexit 0\n"), 0o644)

	cases := []struct {
		argv []string
		env  []string
		code int
		says string
	}{
		{[]string{"no-such-program-xyz"}, nil, CodeNotFound, "no-such-program-xyz"},
		{[]string{filepath.Join(dir, "missing")}, nil, CodeNotFound, "missing"},
		{[]string{"./missing"}, nil, CodeNotFound, "./missing"},
		{[]string{sub}, nil, CodeCannotExecute, "is a directory"},
		{[]string{noexec}, nil, CodeCannotExecute, "noexec"},
		{[]string{garbage}, nil, CodeCannotExecute, "#! line"},
		// Found on the child's PATH but not executable: 126, not 127.
		{[]string{"onlyhere"}, []string{"PATH=" + pathDir}, CodeCannotExecute, "onlyhere"},
		// The child's PATH, not the launcher's: sh is not on this one.
		{[]string{"sh"}, []string{"PATH=" + pathDir}, CodeNotFound, "sh"},
		// A PATH entry that is not a directory hides nothing.
		{[]string{"sh"}, []string{"PATH=" + noexec}, CodeNotFound, "sh"},
		{nil, nil, CodeNotFound, "no command"},
	}
	for _, c := range cases {
		sup, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = sup.Start(Spec{Argv: c.argv, Env: c.env, Dir: dir})
		sup.Close()
		var se *StartError
		if !errors.As(err, &se) {
			t.Errorf("%q: error %v is not a *StartError", c.argv, err)
			continue
		}
		if se.Code != c.code || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: code %d, message %q; want %d mentioning %q", c.argv, se.Code, err, c.code, c.says)
		}
		if sup.Pid() != 0 {
			t.Errorf("%q: a child pid was recorded after a failed start", c.argv)
		}
	}
}

func TestChildGetsEnvDirStdioAndPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "mytool"), []byte("#!/bin/sh\necho \"tool $FOO $(pwd)\"\nexit 7\n"), 0o755)
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	code, _ := run(t, Options{}, Spec{
		Argv:   []string{"mytool"},
		Env:    []string{"PATH=" + bin + ":/usr/bin:/bin", "FOO=bar"},
		Dir:    dir,
		Stdout: out,
	})
	b, _ := os.ReadFile(out.Name())
	if code != 7 || strings.TrimSpace(string(b)) != "tool bar "+dir {
		t.Fatalf("code %d, output %q; want 7 and %q", code, b, "tool bar "+dir)
	}
}

func TestChildHasItsOwnProcessGroup(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pgid")
	code, _ := run(t, Options{}, Spec{Argv: sh(`ps -o pgid= -p $$ > "$0"; echo $$ >> "$0"`, out)})
	b, _ := os.ReadFile(out)
	f := strings.Fields(string(b))
	if code != 0 || len(f) != 2 || f[0] != f[1] {
		t.Fatalf("child's pgid and pid should match: %q (code %d)", b, code)
	}
	if f[0] == fmt.Sprint(unix.Getpgrp()) {
		t.Fatal("child shares the launcher's process group")
	}
}

func TestSignalChildOrGroup(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := `trap 'echo main >> "$0"' USR1
(trap 'echo sub >> "$0"' USR1; echo subready >> "$0"; while :; do sleep 0.01; done) &
echo mainready >> "$0"
while :; do sleep 0.01; done`
	// A grace far beyond any scheduling delay: a stop that waited for it
	// cannot pass for one that did not, however loaded the machine.
	sup, err := New(Options{StopTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(Spec{Argv: sh(script, log)}); err != nil {
		t.Fatal(err)
	}
	killGroupOnFailure(t, sup)
	done := make(chan int, 1)
	go func() { c, _ := sup.Wait(context.Background()); done <- c }()
	waitFile(t, log, "mainready", 5*time.Second)
	waitFile(t, log, "subready", 5*time.Second)

	if err := sup.Signal(unix.SIGUSR1, false); err != nil {
		t.Fatal(err)
	}
	waitFile(t, log, "main", 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if b, _ := os.ReadFile(log); strings.Contains(string(b), "sub\n") {
		t.Fatalf("signal to the child reached the group: %q", b)
	}
	if err := sup.Signal(unix.SIGUSR1, true); err != nil {
		t.Fatal(err)
	}
	waitFile(t, log, "sub\n", 5*time.Second)
	// The child runs its trap once its own `sleep 0.01` ends, maybe after
	// the subshell ran its: wait for the second "main" rather than race it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(log)
		if strings.Count(string(b), "main\n") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group signal should reach the child too: %q", b)
		}
	}

	// A stop of a child with TERM at its default action ends it at once,
	// and the subshell left in its group is terminated too.
	start := time.Now()
	if err := sup.Stop(unix.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 143 {
			t.Fatalf("code %d, want 143", code)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("stop took %v; the child and leftovers die of TERM, no grace needed", el)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after TERM")
	}
	if groupHasLiving(sup.Pid()) {
		t.Fatal("the child's process group still has members")
	}
	if err := sup.Signal(unix.SIGUSR1, false); !errors.Is(err, ErrExited) {
		t.Fatalf("Signal after exit: %v, want ErrExited", err)
	}
}

func TestStopGraceThenKill(t *testing.T) {
	const grace = 300 * time.Millisecond
	sup, err := New(Options{StopTimeout: grace})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	// TERM ignored by the shell and, inherited, by its sleeps.
	if err := sup.Start(Spec{Argv: sh(`trap '' TERM; echo ready > "$0"; while :; do sleep 0.01; done`, ready)}); err != nil {
		t.Fatal(err)
	}
	killGroupOnFailure(t, sup)
	waitFile(t, ready, "ready", 5*time.Second)
	start := time.Now()
	if err := sup.Stop(unix.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	code, err := sup.Wait(context.Background())
	el := time.Since(start)
	if err != nil || code != 137 {
		t.Fatalf("code %d, err %v; want 137 (SIGKILL)", code, err)
	}
	if el < grace || el > grace+2*time.Second {
		t.Fatalf("SIGKILL after %v, want the grace %v (correctness bound: +2s on a loaded machine)", el, grace)
	}
	if groupHasLiving(sup.Pid()) {
		t.Fatal("the child's process group still has members")
	}
}

func TestWaitContextCancelStopsTheChild(t *testing.T) {
	sup, err := New(Options{StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(Spec{Argv: []string{"sleep", "30"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	code, err := sup.Wait(ctx)
	if err != nil || code != 143 {
		t.Fatalf("code %d, err %v; want 143", code, err)
	}
}

func TestLeftoversAreTerminated(t *testing.T) {
	// The grace is far beyond any scheduling delay (see above).
	code, el := run(t, Options{StopTimeout: 60 * time.Second}, Spec{Argv: sh(`sleep 90 & sleep 90 & exit 3`)})
	if code != 3 {
		t.Fatalf("code %d, want 3", code)
	}
	if el > 20*time.Second {
		t.Fatalf("took %v: leftovers at TERM's default action should die at once", el)
	}
}

func TestStoppedLeftoversAreTerminatedAtOnce(t *testing.T) {
	// As a subreaper the launcher becomes the stopped leftover's parent, so
	// its group is not orphaned and the kernel does not continue it: TERM
	// alone would stay pending until the SIGKILL at the end of the grace.
	cmd := helperCmd("subreaper-run", "ARGV="+`sh -c 'kill -STOP $$; sleep 30' & sleep 0.1; exit 4`)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var code, ms int
	var werr string
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "code=%d err=%s ms=%d", &code, &werr, &ms); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if code != 4 || werr != "<nil>" {
		t.Fatalf("code %d, err %s; want 4", code, werr)
	}
	if ms > 2000 {
		t.Fatalf("took %d ms of a 5 s grace: a stopped leftover must be continued to act on TERM", ms)
	}
}

func TestLeftoversIgnoringTermAreKilled(t *testing.T) {
	const grace = 300 * time.Millisecond
	sup, err := New(Options{StopTimeout: grace})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if err := sup.Start(Spec{Argv: sh(`(trap '' TERM; sleep 30) & sleep 0.1; exit 5`)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, err := sup.Wait(context.Background())
	el := time.Since(start)
	if err != nil || code != 5 {
		t.Fatalf("code %d, err %v; want 5", code, err)
	}
	// Not before the grace; after it, as soon as the loaded machine allows
	// (the 30 s sleep bounds what "never killed" would look like).
	if el < grace || el > grace+15*time.Second {
		t.Fatalf("Wait returned after %v, want about the grace %v after the child's exit", el, grace)
	}
	if groupHasLiving(sup.Pid()) {
		t.Fatal("a leftover survived SIGKILL")
	}
}

func TestMisuse(t *testing.T) {
	sup, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	if _, err := sup.Wait(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Wait before Start: %v", err)
	}
	if err := sup.Signal(unix.SIGTERM, false); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Signal before Start: %v", err)
	}
	if err := sup.Stop(unix.SIGTERM, false); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := sup.Start(Spec{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(Spec{Argv: []string{"true"}}); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	if code, err := sup.Wait(context.Background()); code != 0 || err != nil {
		t.Errorf("Wait: %d %v", code, err)
	}
}

func TestOrphansReapedAsSubreaper(t *testing.T) {
	const n = 500
	cmd := helperCmd("reaper", "ORPHANS="+fmt.Sprint(n))
	// A bound on a hang, not a speed requirement: a supervisor that does
	// not reap never lets the helper report.
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper (killed after 2m if the orphans were never all reaped): %v: %s", err, out)
	}
	var code, orphans, zombies, left int
	var werr string
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "code=%d err=%s orphans=%d zombies=%d left=%d", &code, &werr, &orphans, &zombies, &left); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if code != 7 || werr != "<nil>" {
		t.Fatalf("main child: code %d, err %s; want 7", code, werr)
	}
	// The helper reports once every orphan is reaped (the subshells that
	// orphaned them are the main child's to reap, not the supervisor's).
	if orphans < n {
		t.Fatalf("reaped %d orphans, want at least %d", orphans, n)
	}
	if zombies != 0 || left != 0 {
		t.Fatalf("zombies among the launcher's children once every orphan was reaped, the child still running: %d; left at the end: %d", zombies, left)
	}
}

func TestParentDeathSignalReachesChild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "got")
	cmd := helperCmd("pdeath", "OUT="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	readLine(t, bufio.NewReader(stdout), "child=", 10*time.Second)
	waitFile(t, out+".ready", "ready", 5*time.Second)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("child got TERM while its parent was alive (thread retired?)")
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitFile(t, out, "TERM", 5*time.Second)
}

func TestSetParentDeathSignalFlowsToForwarder(t *testing.T) {
	out := filepath.Join(t.TempDir(), "got")
	cmd := helperCmd("self-pdeath-middle", "OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFile(t, out+".ready", "ready", 10*time.Second)
	cmd.Process.Kill()
	cmd.Wait()
	waitFile(t, out, "stop TERM", 5*time.Second)
}

func TestSetParentDeathSignalAfterParentDied(t *testing.T) {
	out := filepath.Join(t.TempDir(), "got")
	cmd := helperCmd("self-pdeath-middle", "OUT="+out, "LATE=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFile(t, out+".early", "ready", 10*time.Second)
	cmd.Process.Kill()
	cmd.Wait()
	waitFile(t, out, "stop TERM", 5*time.Second)
}

func TestBecomeSubreaperNotInTestProcess(t *testing.T) {
	// The test process itself must stay unchanged; the helper checks the
	// effect. Here: it is a no-op only as PID 1.
	if os.Getpid() == 1 {
		testenv.Unavailable(t, "running as PID 1")
	}
	if isSubreaper() {
		t.Fatal("test process is a subreaper: some test polluted it")
	}
}
