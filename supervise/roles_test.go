package supervise

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"github.com/molecule-ai/codex-launch/signals"
	"golang.org/x/sys/unix"
)

// runHelper plays one role in a re-executed test binary; its exit code and
// stdout are what the test checks.
func runHelper(role string) int {
	switch role {
	case "reaper":
		return helperReaper()
	case "subreaper-run":
		return helperSubreaperRun()
	case "pdeath":
		return helperPdeath()
	case "self-pdeath-middle":
		inner := helperCmd("self-pdeath")
		inner.Stdout, inner.Stderr = os.Stdout, os.Stderr
		if err := inner.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		select {} // killed by the test
	case "self-pdeath":
		return helperSelfPdeath()
	case "tty":
		return helperTTY()
	case "ticker":
		fmt.Println("child ready")
		for {
			time.Sleep(50 * time.Millisecond)
			fmt.Println("tick")
		}
	}
	fmt.Fprintln(os.Stderr, "unknown helper role", role)
	return 2
}

// helperReaper becomes a subreaper and runs a child that leaves ORPHANS
// orphans behind and then waits on its stdin. Once the supervisor has reaped
// that many, while the child still runs, it counts the zombies left among
// its children, lets the child exit and reports.
func helperReaper() int {
	if err := BecomeSubreaper(); err != nil {
		fmt.Println("subreaper error:", err)
		return 1
	}
	if !isSubreaper() {
		fmt.Println("not a subreaper after BecomeSubreaper")
		return 1
	}
	n, err := strconv.ParseUint(os.Getenv("ORPHANS"), 10, 64)
	if err != nil {
		fmt.Println("ORPHANS:", err)
		return 1
	}
	sup, err := New(Options{})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer sup.Close()
	hold, release, err := os.Pipe()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	// Each subshell starts a process and exits at once, orphaning it; the
	// child then waits until release is closed.
	argv := []string{"/bin/sh", "-c", `i=0; while [ $i -lt $0 ]; do (/bin/true &); i=$((i+1)); done; read _; exit 7`, fmt.Sprint(n)}
	err = sup.Start(Spec{Argv: argv, Stdin: hold})
	hold.Close()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	type res struct {
		code int
		err  error
	}
	done := make(chan res, 1)
	go func() {
		c, err := sup.Wait(context.Background())
		done <- res{c, err}
	}()
	// No time limit of its own: a supervisor that does not reap leaves the
	// test to go test's timeout.
	for sup.Orphans() < n {
		time.Sleep(time.Millisecond)
	}
	zombies := len(zombieChildren(os.Getpid()))
	release.Close()
	r := <-done
	fmt.Printf("code=%d err=%v orphans=%d zombies=%d left=%d\n", r.code, r.err, sup.Orphans(), zombies, len(zombieChildren(os.Getpid())))
	return 0
}

// helperSubreaperRun runs ARGV (a shell script) as a subreaper with a 5 s
// grace and reports its code and how long Wait took.
func helperSubreaperRun() int {
	if err := BecomeSubreaper(); err != nil {
		fmt.Println(err)
		return 1
	}
	sup, err := New(Options{StopTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer sup.Close()
	start := time.Now()
	if err := sup.Start(Spec{Argv: []string{"/bin/sh", "-c", os.Getenv("ARGV")}}); err != nil {
		fmt.Println(err)
		return 1
	}
	code, err := sup.Wait(context.Background())
	fmt.Printf("code=%d err=%v ms=%d\n", code, err, time.Since(start).Milliseconds())
	return 0
}

// helperPdeath starts a child with a parent-death signal, reports its pid
// and waits to be killed.
func helperPdeath() int {
	sup, err := New(Options{})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	out := os.Getenv("OUT")
	argv := []string{"/bin/sh", "-c", `trap 'echo TERM > "$0"; exit 0' TERM; echo ready > "$0.ready"; while :; do sleep 0.01; done`, out}
	if err := sup.Start(Spec{Argv: argv, ParentDeathSignal: unix.SIGTERM}); err != nil {
		fmt.Println(err)
		return 1
	}
	// Churn OS threads: a child forked from an ordinary goroutine's thread
	// would get its parent-death signal when such a thread is retired.
	for i := 0; i < 50; i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A goroutine that exits locked takes its thread with it.
			runtime.LockOSThread()
		}()
		<-done
	}
	fmt.Printf("child=%d\n", sup.Pid())
	go func() { _, _ = sup.Wait(context.Background()) }()
	select {}
}

// helperSelfPdeath asks for TERM when its parent dies and reports what the
// forwarder saw.
func helperSelfPdeath() int {
	fwd := signals.Listen(signals.Options{})
	parent := os.Getppid()
	out := os.Getenv("OUT")
	if os.Getenv("LATE") != "" {
		// The parent dies before the setting is made: it must be noticed.
		_ = os.WriteFile(out+".early", []byte("ready"), 0o600)
		for os.Getppid() == parent {
			time.Sleep(time.Millisecond)
		}
	}
	if err := SetParentDeathSignalFor(unix.SIGTERM, parent); err != nil {
		fmt.Println(err)
		return 1
	}
	if err := os.WriteFile(out+".ready", []byte("ready"), 0o600); err != nil {
		return 1
	}
	select {
	case sig := <-fwd.Stops():
		_ = os.WriteFile(out, []byte("stop "+signals.Name(sig)), 0o600)
		return 0
	case <-time.After(10 * time.Second):
		_ = os.WriteFile(out, []byte("timeout"), 0o600)
		return 1
	}
}

// helperTTY runs a child in the foreground of the terminal on stdin and
// reports how it ended and who owns the terminal afterwards.
func helperTTY() int {
	sup, err := New(Options{StopTimeout: time.Second})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	// exec: dash starts a command with vfork and all signals blocked, and a
	// Ctrl-C in that window was lost now and then under load (the shell and
	// sleep lived on with nothing pending); with exec there is no window.
	argv := []string{"/bin/sh", "-c", `echo "child ready fg=$(ps -o tpgid= -p $$ | tr -d ' ') pgid=$(ps -o pgid= -p $$ | tr -d ' ')"; exec sleep 30`}
	if p := os.Getenv("ARGV"); p != "" {
		argv = []string{"/bin/sh", "-c", p, os.Args[0]}
	}
	var env []string
	if os.Getenv("TICKER") != "" {
		env = append(os.Environ(), helperEnv+"=ticker")
	}
	if err := sup.Start(Spec{Argv: argv, Env: env, Foreground: true}); err != nil {
		fmt.Println(err)
		return 1
	}
	t0 := time.Now()
	code, err := sup.Wait(context.Background())
	fg, _ := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	fmt.Printf("launcher code=%d err=%v restored=%v waited=%v\n", code, err, fg == unix.Getpgrp(), time.Since(t0))
	return code
}

var _ = exec.Command
