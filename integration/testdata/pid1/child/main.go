// Command child is the scripted child that the PID-1 integration tests run
// under codex-launch, tini and dumb-init. Each mode is one behaviour an init
// must cope with; the child reports what it saw in a file or on stdout and
// says by its exit status whether its own checks passed, so the tests judge
// the init from the outside.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/procstat"
)

func main() {
	if len(os.Args) < 2 {
		fatalf("usage: child MODE [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	switch mode {
	case "catch":
		catch(args)
	case "sleep":
		sleepMode(args)
	case "spawn":
		spawn(args)
	case "reap":
		reap(args)
	case "fanout":
		fanout(args)
	case "orphans":
		orphans(args)
	case "interactive":
		interactive(args)
	case "shim":
		shim(args)
	case "whereami":
		cwd, _ := os.Getwd()
		fmt.Printf("cwd=%s var=%s\n", cwd, os.Getenv("PID1_TEST_VAR"))
	default:
		fatalf("unknown mode %q", mode)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "child: "+format+"\n", a...)
	os.Exit(99)
}

// catchable are the signals the child records: every signal a process can
// catch, except SIGURG and SIGPROF (the Go runtime's own) and SIGCHLD (the
// child's own children would add noise). Synchronous faults are included:
// sent with kill(2) they are ordinary signals, and an init that forwards
// them should be seen doing so.
func catchable() []os.Signal {
	var out []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, 32, 33:
			continue
		}
		out = append(out, s)
	}
	return out
}

// appendLine writes one line with a single write(2) on an O_APPEND file, so
// lines from several processes never interleave.
func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(line + "\n")); err != nil {
		fatalf("write %s: %v", path, err)
	}
}

// catch records every signal it receives as "PID SIGNUM" lines in -out, after
// a "PID ready" line. With -group K it first starts K copies of itself in its
// own process group (they record to the same file), so that group forwarding
// can be observed. -ignore makes it ignore the listed signals; -exit-on makes
// it exit 0 when that signal arrives; -exit-after makes it exit by itself.
func catch(args []string) {
	fs := flag.NewFlagSet("catch", flag.ExitOnError)
	out := fs.String("out", "", "file to append received signals to")
	group := fs.Int("group", 0, "start this many copies in the same process group")
	ignore := fs.String("ignore", "", "comma list of signal numbers to ignore")
	exitOn := fs.Int("exit-on", 0, "exit 0 when this signal arrives")
	exitAfter := fs.Duration("exit-after", 0, "exit 0 after this long")
	defaultTerm := fs.Bool("default-term", false, "leave SIGTERM at its default action")
	_ = fs.Parse(args)
	if *out == "" {
		fatalf("catch: -out is required")
	}
	ignored := map[syscall.Signal]bool{}
	for _, f := range strings.Split(*ignore, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			fatalf("catch: bad -ignore %q", f)
		}
		ignored[syscall.Signal(n)] = true
	}
	var watch []os.Signal
	for _, s := range catchable() {
		sig := s.(syscall.Signal)
		if ignored[sig] || (*defaultTerm && sig == syscall.SIGTERM) {
			continue
		}
		watch = append(watch, s)
	}
	for sig := range ignored {
		signal.Ignore(sig)
	}
	ch := make(chan os.Signal, 4096)
	signal.Notify(ch, watch...)

	var kids []*exec.Cmd
	for i := 0; i < *group; i++ {
		kid := []string{"catch", "-out", *out, "-ignore", *ignore}
		if *exitOn != 0 {
			kid = append(kid, "-exit-on", strconv.Itoa(*exitOn))
		}
		if *defaultTerm {
			kid = append(kid, "-default-term")
		}
		cmd := exec.Command("/proc/self/exe", kid...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fatalf("catch: start group member: %v", err)
		}
		kids = append(kids, cmd)
	}
	for _, k := range kids {
		waitReady(*out, k.Process.Pid)
	}
	pid := os.Getpid()
	appendLine(*out, fmt.Sprintf("%d ready", pid))
	var after <-chan time.Time
	if *exitAfter > 0 {
		after = time.After(*exitAfter)
	}
	for {
		select {
		case s := <-ch:
			sig := s.(syscall.Signal)
			appendLine(*out, fmt.Sprintf("%d %d", pid, int(sig)))
			if int(sig) == *exitOn {
				os.Exit(0)
			}
		case <-after:
			os.Exit(0)
		}
	}
}

func waitReady(path string, pid int) {
	want := fmt.Sprintf("%d ready", pid)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if l == want {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	fatalf("group member %d never became ready", pid)
}

// sleepMode sleeps, optionally ignoring SIGTERM, so that it survives a
// polite stop and only SIGKILL ends it.
func sleepMode(args []string) {
	fs := flag.NewFlagSet("sleep", flag.ExitOnError)
	d := fs.Duration("d", time.Hour, "how long to sleep")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM")
	orphanedFrom := fs.Int("orphaned-from", 0, "start the sleep only once this parent has exited")
	_ = fs.String("tag", "", "a mark on the command line, to find the process from outside")
	_ = fs.Parse(args)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *orphanedFrom != 0 {
		// Live on until the parent is gone, so that every grandchild is
		// seen reparented however slowly its siblings were started.
		for end := time.Now().Add(30 * time.Second); os.Getppid() == *orphanedFrom && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(*d)
}

// spawn starts N sleepers that it never waits for, prints their pids one per
// line, and exits: they become orphans at once.
func spawn(args []string) {
	fs := flag.NewFlagSet("spawn", flag.ExitOnError)
	n := fs.Int("n", 100, "how many")
	d := fs.Duration("d", 300*time.Millisecond, "how long each sleeps")
	setsid := fs.Bool("setsid", false, "put each in its own session (leave the group)")
	ignoreTerm := fs.Bool("ignore-term", false, "the sleepers ignore SIGTERM")
	tag := fs.String("tag", "", "passed to the sleepers' command line")
	_ = fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		fatalf("spawn: %v", err)
	}
	argv := []string{"child", "sleep", "-orphaned-from", strconv.Itoa(os.Getpid()), "-d", d.String()}
	if *ignoreTerm {
		argv = append(argv, "-ignore-term")
	}
	if *tag != "" {
		argv = append(argv, "-tag", *tag)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < *n; i++ {
		// syscall.ForkExec keeps no pidfd, so nothing in this process
		// waits for or holds on to the sleepers.
		pid, err := syscall.ForkExec(self, argv, &syscall.ProcAttr{
			Files: []uintptr{0, 2, 2},
			Sys:   &syscall.SysProcAttr{Setsid: *setsid},
		})
		if err != nil {
			fatalf("spawn: %v", err)
		}
		fmt.Fprintln(w, pid)
	}
	if err := w.Flush(); err != nil {
		fatalf("spawn: %v", err)
	}
}

// readStat reads /proc/PID/stat; false when pid is gone.
func readStat(pid int) (procstat.Stat, bool) {
	st, err := procstat.Read(pid)
	return st, err == nil
}

// reap is the main child of the grandchildren scenario: it runs "spawn" (its
// child, which starts N grandchildren and exits), then watches every
// grandchild until it is gone, and every 5 ms scans /proc for any zombie
// whose parent is the init. It fails when a zombie of the init lives longer
// than -max-zombie (the init is not reaping), or a grandchild is not gone by
// -deadline. It prints one summary line: how many were reparented to its own
// parent (the init) and the longest zombie life seen.
func reap(args []string) {
	fs := flag.NewFlagSet("reap", flag.ExitOnError)
	n := fs.Int("n", 100, "grandchildren")
	d := fs.Duration("d", 300*time.Millisecond, "how long each grandchild lives")
	maxZombie := fs.Duration("max-zombie", time.Second, "longest a zombie may stay")
	deadline := fs.Duration("deadline", 10*time.Second, "all must be gone by then")
	_ = fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		fatalf("reap: %v", err)
	}
	sp := exec.Command(self, "spawn", "-n", strconv.Itoa(*n), "-d", d.String())
	sp.Stderr = os.Stderr
	out, err := sp.Output()
	if err != nil {
		fatalf("reap: spawn: %v", err)
	}
	var pids []int
	for _, l := range strings.Fields(string(out)) {
		p, _ := strconv.Atoi(l)
		pids = append(pids, p)
	}
	if len(pids) != *n {
		fatalf("reap: spawn reported %d pids, want %d", len(pids), *n)
	}
	initPid := os.Getppid()
	firstZombie := map[int]time.Time{}
	reparented := map[int]bool{}
	var longest time.Duration
	left := map[int]bool{}
	for _, p := range pids {
		left[p] = true
	}
	end := time.Now().Add(*deadline)
	for len(left) > 0 && time.Now().Before(end) {
		now := time.Now()
		for p := range left {
			st, ok := readStat(p)
			if !ok {
				delete(left, p)
				continue
			}
			if st.PPid == initPid {
				reparented[p] = true
			}
		}
		// Any zombie of the init, not only the grandchildren: the whole of
		// /proc (small inside a PID namespace).
		ents, err := os.ReadDir("/proc")
		if err != nil {
			fatalf("reap: %v", err)
		}
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if st, ok := readStat(p); !ok || st.State != 'Z' || st.PPid != initPid {
				continue
			}
			t0, seen := firstZombie[p]
			if !seen {
				firstZombie[p] = now
				t0 = now
			}
			if age := now.Sub(t0); age > longest {
				longest = age
			}
		}
		if longest > *maxZombie {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("grandchildren=%d reparented_to_init=%d left=%d zombies_seen=%d longest_zombie=%s\n",
		len(pids), len(reparented), len(left), len(firstZombie), longest.Round(time.Millisecond))
	switch {
	case longest > *maxZombie:
		fmt.Fprintf(os.Stderr, "child: a zombie stayed %s (more than %s): not reaped\n", longest, *maxZombie)
		os.Exit(3)
	case len(left) > 0:
		fmt.Fprintf(os.Stderr, "child: %d grandchildren still there after %s\n", len(left), *deadline)
		os.Exit(4)
	case len(reparented) != len(pids):
		fmt.Fprintf(os.Stderr, "child: only %d of %d grandchildren were reparented to the init (pid %d)\n", len(reparented), len(pids), initPid)
		os.Exit(5)
	}
}

// rawFork forks without exec: the new process only sleeps (raw syscall) and
// exits, touching nothing of the Go runtime. It is ten times cheaper than
// fork+exec, which makes 10,000 orphans take seconds instead of tens.
func rawFork(sleep *syscall.Timespec) (int, error) {
	r1, _, e := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r1 == 0 {
		if sleep != nil {
			syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(sleep)), 0, 0)
		}
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(r1), nil
}

// fanout forks N short-lived processes (half exit at once, half live a few
// milliseconds) and exits without waiting: they become orphans, some still
// running and some already zombies.
func fanout(args []string) {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	n := fs.Int("n", 100, "how many")
	_ = fs.Parse(args)
	ts := &syscall.Timespec{Nsec: int64(3 * time.Millisecond)}
	for i := 0; i < *n; i++ {
		var sl *syscall.Timespec
		if i%2 == 1 {
			sl = ts
		}
		if _, err := rawFork(sl); err != nil {
			fatalf("fanout: fork: %v", err)
		}
	}
}

// orphans makes -n short-lived orphans in batches (one "fanout" process per
// batch) and then waits until no process but itself and the init is left in
// the PID namespace and no zombie of the init remains.
func orphans(args []string) {
	fs := flag.NewFlagSet("orphans", flag.ExitOnError)
	n := fs.Int("n", 10000, "orphans")
	batch := fs.Int("batch", 100, "orphans per fanout process")
	deadline := fs.Duration("deadline", 15*time.Second, "all must be reaped by then")
	_ = fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		fatalf("orphans: %v", err)
	}
	made := 0
	for made < *n {
		k := min(*batch, *n-made)
		if err := exec.Command(self, "fanout", "-n", strconv.Itoa(k)).Run(); err != nil {
			fatalf("orphans: fanout: %v", err)
		}
		made += k
	}
	initPid, me := os.Getppid(), os.Getpid()
	end := time.Now().Add(*deadline)
	var zombies, others int
	for {
		zombies, others = 0, 0
		ents, err := os.ReadDir("/proc")
		if err != nil {
			fatalf("orphans: %v", err)
		}
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil || p == me || p == initPid {
				continue
			}
			st, ok := readStat(p)
			if !ok {
				continue
			}
			switch {
			case st.PPid == initPid && st.State == 'Z':
				zombies++
			case st.PPid == initPid || st.PPid == me:
				others++
			}
		}
		if zombies == 0 && others == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("orphans=%d zombies_left=%d others_left=%d\n", made, zombies, others)
	if zombies > 0 || others > 0 {
		os.Exit(3)
	}
}

// interactive is a person's program on a terminal: it reads lines and echoes
// them, reports SIGINT instead of dying, and leaves SIGTSTP at its default
// (so Ctrl-Z stops it); it reports SIGCONT when it is resumed. "exit" ends it
// with 0.
func interactive(args []string) {
	_ = args
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGCONT)
	go func() {
		for s := range sigs {
			if s == syscall.SIGINT {
				fmt.Println("got INT")
			} else {
				fmt.Println("got CONT")
			}
		}
	}()
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		fg = -1
	}
	fmt.Printf("ready pid=%d foreground=%v\n", os.Getpid(), fg == syscall.Getpgrp())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "exit" {
			fmt.Println("bye")
			return
		}
		fmt.Printf("echo: %s\n", line)
	}
	os.Exit(7)
}

// shim stands in for whatever starts an init that is not PID 1 (a shell, a
// runtime): it becomes a child subreaper so that orphans the init fails to
// adopt end up here and are reaped here, never leaking onto the machine, then
// runs its arguments and exits with their status.
//
// With -job it also does what an interactive shell does for a foreground
// job: the command gets a process group of its own, made the terminal's
// foreground group (the shim's stdin must be its controlling terminal).
func shim(args []string) {
	job := false
	if len(args) > 0 && args[0] == "-job" {
		job, args = true, args[1:]
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fatalf("shim: no command")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fatalf("shim: subreaper: %v", err)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fatalf("shim: %v", err)
	}
	sys := &syscall.SysProcAttr{}
	if job {
		sys.Setpgid, sys.Foreground, sys.Ctty = true, true, 0
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: sys})
	if err != nil {
		fatalf("shim: %v", err)
	}
	code := -1
	for {
		var ws syscall.WaitStatus
		p, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			break // ECHILD: nothing left
		}
		if p == pid {
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			// Leftovers are killed: the shim only stands in for a parent.
			break
		}
	}
	os.Exit(code)
}
