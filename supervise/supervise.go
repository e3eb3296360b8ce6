// Package supervise runs codex-launch's one child and is the only place in
// the process that waits for children.
//
// # One wait loop
//
// New registers for SIGCHLD before any child exists. Wait is the wait loop:
// on every SIGCHLD (and once when it starts, since a child can exit before
// anyone listens) it calls wait4(-1, WNOHANG) until nothing is left to reap,
// recognises the main child's pid and keeps its status, and reaps every other
// child: orphans re-parented to the launcher because it is PID 1 or a child
// subreaper. Nothing else in the program may wait for a child: exec.Cmd.Wait
// or os.Process.Wait would race this loop for statuses (and since Go 1.23
// fail outright when it wins). The child is started with syscall.ForkExec and
// never handed to os.Process.
//
// # Stopping and what is left behind
//
// The child runs in its own process group (its pgid is its pid). Stop sends a
// signal and arms a grace timer (Options.StopTimeout); when it fires, the
// whole group gets SIGKILL. When the main child exits, by itself or after a
// stop, Wait looks at its group: if any process is left in it, the group gets
// SIGTERM (and SIGCONT, so that a stopped leftover can act on it), and
// SIGKILL when the grace ends (the stop's deadline if one was
// already armed, so the total never exceeds one grace period), and Wait
// returns once the group is empty, or Options.KillTimeout after the SIGKILL
// at the latest (a process in uninterruptible sleep cannot be hurried).
// While it waits it keeps reaping.
//
// Processes that left the group (setsid, setpgid: daemons) are not chased:
// the launcher cannot tell them from processes it has no business killing.
// While the launcher runs they are reaped when they exit, as any orphan is.
// When it exits as PID 1 of a PID namespace, the kernel kills everything left
// in the namespace. When it is not PID 1, they are re-parented to the next
// subreaper or init, as they would be without the launcher.
//
// # Terminals and job control
//
// With Spec.Foreground and a terminal on the child's stdin whose foreground
// group is the launcher's, the child's group becomes the terminal's
// foreground group as it starts, so Ctrl-C, Ctrl-\ and Ctrl-Z go from the
// kernel straight to the child's group (the launcher, in the background,
// does not see them and forwards nothing twice). When the child's group is
// stopped from the terminal (TSTP, TTIN, TTOU) the launcher acts like a job
// of the shell it runs under: it takes the terminal back and stops itself,
// so the shell reports it stopped; on `fg` it hands the terminal back to the
// child and continues it. As PID 1, or as the child of PID 1 (another init),
// there is no shell to resume anything, so the child is continued at once
// instead of freezing the container. When
// the child exits, the terminal's foreground group is given back to the
// launcher's group.
//
// # Parent death
//
// Spec.ParentDeathSignal is the signal the child gets if the launcher dies
// (for example it is SIGKILLed). The kernel ties that setting to the thread
// that forked the child, not the process, so the child is forked from a
// goroutine locked to its OS thread that stays until the child is reaped.
// SetParentDeathSignal is the other direction (tini -p): the launcher asks to
// be signalled when its own parent dies, and that signal reaches the child
// through ordinary forwarding.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Defaults for Options.
const (
	// DefaultStopTimeout stays below Docker's 10 s so the launcher, not the
	// runtime, decides when the child's group is killed.
	DefaultStopTimeout = 8 * time.Second
	// DefaultKillTimeout bounds the wait for a SIGKILLed group to be gone.
	DefaultKillTimeout = 2 * time.Second
)

// leftoverPoll is how often Wait checks that the child's group is empty while
// leftovers are being stopped; SIGCHLD usually says so first, but a process
// that is not the launcher's descendant sends no SIGCHLD to it.
const leftoverPoll = 20 * time.Millisecond

// Errors a caller may need to tell apart.
var (
	ErrNotStarted = errors.New("supervise: child not started")
	ErrStarted    = errors.New("supervise: child already started")
	ErrExited     = errors.New("supervise: child already exited")
)

// Options configure a Supervisor; the zero value is usable.
type Options struct {
	// StopTimeout is the grace between a stop signal and SIGKILL to the
	// child's group, and between SIGTERM and SIGKILL to leftovers after the
	// child exits. 0 means DefaultStopTimeout.
	StopTimeout time.Duration
	// KillTimeout bounds how long Wait waits for the group to vanish after
	// SIGKILL. 0 means DefaultKillTimeout.
	KillTimeout time.Duration
	// StopSignal is sent to the child when Wait's context is cancelled.
	// 0 means SIGTERM.
	StopSignal syscall.Signal
	// ZeroExitCodes are exit codes reported as 0 (tini -e), e.g. 143 for a
	// runtime that exits 128+TERM when stopped. They apply to 128+N codes of
	// signalled children too.
	ZeroExitCodes []int
	// Logger gets the supervisor's lines; nil discards.
	Logger hclog.Logger
}

// Spec describes the child.
type Spec struct {
	// Argv is the command; Argv[0] is looked up in the PATH of Env when it
	// has no slash.
	Argv []string
	// Env is the child's environment; nil means the launcher's.
	Env []string
	// Dir is the working directory; "" means the launcher's.
	Dir string
	// Credential, when set, makes the child run as that user, group and
	// supplementary groups (set in the child between fork and exec, as gosu
	// does), which needs root.
	Credential *syscall.Credential
	// ParentDeathSignal is sent to the child by the kernel if the launcher
	// dies before it; 0 means none. SIGKILL keeps the promise that the
	// child never outlives the launcher.
	ParentDeathSignal syscall.Signal
	// Foreground hands the terminal on stdin to the child's group when it is
	// a terminal and the launcher's group is its foreground group.
	Foreground bool
	// Stdin, Stdout and Stderr default to the launcher's own.
	Stdin, Stdout, Stderr *os.File
}

// Supervisor owns one child and every wait in the process.
type Supervisor struct {
	opts    Options
	log     hclog.Logger
	sigchld chan os.Signal
	zero    [256]bool
	waiting atomic.Bool
	orphans atomic.Uint64
	pid1    bool
	ownPgrp int
	done    chan struct{} // closed when the main child is reaped

	mu          sync.Mutex // guards the fields below and every wait4 and kill
	pid         int
	exited      bool
	status      unix.WaitStatus
	stopArmed   bool
	killAt      time.Time
	killTimer   *time.Timer
	groupKilled bool
	ttyFd       int
	ttyActive   bool // the child's group was given the terminal
	jobStopped  bool // the launcher is stopping itself on the child's behalf
}

// New registers for SIGCHLD, so that no child exit can be missed, and
// returns a Supervisor ready to Start one child.
func New(opts Options) (*Supervisor, error) {
	s := &Supervisor{
		sigchld: make(chan os.Signal, 1), // SIGCHLD coalesces; one pending wake-up is enough
		pid1:    os.Getpid() == 1,
		ownPgrp: unix.Getpgrp(),
		done:    make(chan struct{}),
	}
	if err := s.configure(opts); err != nil {
		return nil, err
	}
	signal.Notify(s.sigchld, unix.SIGCHLD)
	return s, nil
}

func (s *Supervisor) configure(opts Options) error {
	if opts.StopTimeout < 0 || opts.KillTimeout < 0 {
		return fmt.Errorf("supervise: negative timeout (stop %v, kill %v)", opts.StopTimeout, opts.KillTimeout)
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.KillTimeout == 0 {
		opts.KillTimeout = DefaultKillTimeout
	}
	if opts.StopSignal == 0 {
		opts.StopSignal = unix.SIGTERM
	}
	var zero [256]bool
	for _, c := range opts.ZeroExitCodes {
		if c < 0 || c > 255 {
			return fmt.Errorf("supervise: exit code %d to map to 0 is outside 0..255", c)
		}
		zero[c] = true
	}
	s.opts, s.zero = opts, zero
	s.log = opts.Logger
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	return nil
}

// Start starts the child. A command that cannot be found or executed gives a
// *StartError carrying the exit code to use (127 or 126; 125 for other
// failures).
func (s *Supervisor) Start(spec Spec) error {
	if len(spec.Argv) == 0 {
		return &StartError{Code: CodeNotFound, Err: errors.New("no command given")}
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	prog := spec.Argv[0]
	path, err := resolve(prog, env, spec.Dir, nil)
	if err != nil {
		return err
	}
	stdio := [3]*os.File{spec.Stdin, spec.Stdout, spec.Stderr}
	for i, def := range [3]*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if stdio[i] == nil {
			stdio[i] = def
		}
	}
	sys := &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: spec.Credential,
		Pdeathsig:  spec.ParentDeathSignal,
	}
	stdinFd := int(stdio[0].Fd())
	if spec.Foreground && foregroundOwner(stdinFd) {
		// The child puts itself in the foreground between fork and exec, with
		// every signal blocked (the Go runtime blocks them around fork), so
		// it can never touch the terminal from the background.
		sys.Foreground = true
		sys.Ctty = stdinFd
	}
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd()},
		Sys:   sys,
	}

	// Holding mu across the fork keeps the wait loop from reaping the child
	// before its pid is known: a fast child's status would otherwise be
	// counted as an orphan's.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pid != 0 {
		return ErrStarted
	}
	var pid int
	if spec.ParentDeathSignal != 0 {
		pid, err = s.forkLocked(path, spec.Argv, attr)
	} else {
		pid, err = syscall.ForkExec(path, spec.Argv, attr)
	}
	if err != nil {
		return classify(prog, path, err)
	}
	s.pid = pid
	if sys.Foreground {
		s.ttyFd, s.ttyActive = stdinFd, true
	}
	s.log.Debug("child started", "pid", pid, "path", path, "foreground", sys.Foreground)
	return nil
}

// forkLocked forks from a goroutine locked to its OS thread, because the
// kernel sends the parent-death signal when the forking thread ends, and the
// Go runtime ends threads at will. The goroutine keeps the thread until the
// child is reaped.
func (s *Supervisor) forkLocked(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	type result struct {
		pid int
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		pid, err := syscall.ForkExec(path, argv, attr)
		res <- result{pid, err}
		if err != nil {
			runtime.UnlockOSThread()
			return
		}
		<-s.done
		// Returning while locked ends the thread; the child is gone already.
	}()
	r := <-res
	return r.pid, r.err
}

// Pid is the child's pid (and its process group id), 0 before Start.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Orphans counts the children reaped that were not the main child.
func (s *Supervisor) Orphans() uint64 { return s.orphans.Load() }

// Signal sends sig to the child, or to its process group when group is true.
// It is safe against pid reuse: the child cannot be reaped while it runs.
// A group can still be signalled after the child exited, while members remain.
func (s *Supervisor) Signal(sig syscall.Signal, group bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signalLocked(sig, group)
}

func (s *Supervisor) signalLocked(sig syscall.Signal, group bool) error {
	if s.pid == 0 {
		return ErrNotStarted
	}
	if sig == unix.SIGCONT && s.jobStopped {
		return nil // the job-control path continues the child itself, in the right order
	}
	if group {
		if err := unix.Kill(-s.pid, sig); err != nil {
			return fmt.Errorf("signal %d to process group %d: %w", sig, s.pid, err)
		}
		return nil
	}
	if s.exited {
		return ErrExited
	}
	if err := unix.Kill(s.pid, sig); err != nil {
		return fmt.Errorf("signal %d to child %d: %w", sig, s.pid, err)
	}
	return nil
}

// Stop sends sig like Signal and, the first time, arms the grace timer: when
// Options.StopTimeout has passed, the child's whole group gets SIGKILL.
func (s *Supervisor) Stop(sig syscall.Signal, group bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.signalLocked(sig, group)
	if errors.Is(err, ErrNotStarted) {
		return err
	}
	if !s.stopArmed && !s.exited {
		s.stopArmed = true
		s.killAt = time.Now().Add(s.opts.StopTimeout)
		s.killTimer = time.AfterFunc(s.opts.StopTimeout, s.graceExpired)
		s.log.Info("stopping the child", "signal", unix.SignalName(sig), "group", group, "grace", s.opts.StopTimeout)
	}
	return err
}

func (s *Supervisor) graceExpired() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groupKilled || s.exited {
		return // after the child's exit, Wait owns the deadline
	}
	s.groupKilled = true
	s.log.Warn("grace period over: killing the child's process group", "pgid", s.pid, "grace", s.opts.StopTimeout)
	_ = unix.Kill(-s.pid, unix.SIGKILL)
}

// Wait is the wait loop. It returns when the main child has exited and its
// leftover group is gone (see the package doc), with the exit code to use:
// the child's, 128+N for signal N, or 0 for one of Options.ZeroExitCodes.
// When ctx is cancelled it stops the child (Options.StopSignal, then the
// grace) and keeps waiting: the launcher never exits before its child.
// As an oklog/run actor: execute is Wait(ctx), interrupt cancels ctx.
func (s *Supervisor) Wait(ctx context.Context) (int, error) {
	if s.Pid() == 0 {
		return CodeLauncher, ErrNotStarted
	}
	if !s.waiting.CompareAndSwap(false, true) {
		return CodeLauncher, errors.New("supervise: Wait called twice")
	}
	ctxDone := ctx.Done()
	exited := s.reapAll()
	for !exited {
		select {
		case <-s.sigchld:
			exited = s.reapAll()
		case <-ctxDone:
			ctxDone = nil
			s.log.Info("asked to stop", "cause", context.Cause(ctx))
			_ = s.Stop(s.opts.StopSignal, false)
		}
	}
	s.mu.Lock()
	ws := s.status
	if s.killTimer != nil {
		s.killTimer.Stop()
	}
	tty := s.ttyActive
	s.mu.Unlock()
	if tty {
		if err := setForeground(s.ttyFd, s.ownPgrp); err != nil {
			s.log.Debug("could not take the terminal back", "error", err)
		}
	}
	code := ExitCode(ws)
	s.finishGroup()
	exit := code
	if s.zero[code] {
		exit = 0
	}
	s.logEnd(ws, exit)
	return exit, nil
}

// logEnd writes the one line every run ends with: how the child ended and the
// status codex-launch exits with.
func (s *Supervisor) logEnd(ws unix.WaitStatus, exit int) {
	args := []interface{}{"pid", s.Pid(), "exit", exit}
	if n := s.orphans.Load(); n > 0 {
		args = append(args, "orphans_reaped", n)
	}
	if ws.Signaled() {
		if ws.CoreDump() {
			args = append(args, "core_dumped", true)
		}
		s.log.Info("child killed by "+unix.SignalName(ws.Signal()), args...)
		return
	}
	s.log.Info(fmt.Sprintf("child exited with code %d", ws.ExitStatus()), args...)
}

// reapAll reaps every child that has changed state and reports whether the
// main child has exited.
func (s *Supervisor) reapAll() bool {
	debug := s.log.IsDebug()
	for {
		var ws unix.WaitStatus
		s.mu.Lock()
		flags := unix.WNOHANG
		if s.ttyActive && !s.exited {
			flags |= unix.WUNTRACED
		}
		pid, err := unix.Wait4(-1, &ws, flags, nil)
		if err == unix.EINTR {
			s.mu.Unlock()
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none ready
			exited := s.exited
			s.mu.Unlock()
			return exited
		}
		if pid == s.pid && !s.exited {
			if ws.Stopped() {
				s.mu.Unlock()
				s.childStopped(ws.StopSignal())
				continue
			}
			s.exited, s.status = true, ws
			close(s.done) // once: exited guards it
			s.mu.Unlock()
			continue
		}
		s.mu.Unlock()
		if ws.Stopped() {
			continue
		}
		s.orphans.Add(1)
		if debug {
			s.log.Debug("reaped orphan", "pid", pid, "code", ExitCode(ws))
		}
	}
}

// childStopped handles the child's group being stopped from its terminal.
func (s *Supervisor) childStopped(sig syscall.Signal) {
	if sig != unix.SIGTSTP && sig != unix.SIGTTIN && sig != unix.SIGTTOU {
		return // SIGSTOP from a debugger or an operator: not ours to undo
	}
	s.mu.Lock()
	pid, fd := s.pid, s.ttyFd
	// As PID 1, or the child of one (docker run --init, or a launcher whose
	// shell has gone), no job-control shell exists to resume a stopped
	// job: stopping would freeze the container for good.
	if s.pid1 || os.Getppid() == 1 {
		s.mu.Unlock()
		s.log.Info("child stopped by job control, but no shell above can resume it: continuing it", "signal", unix.SignalName(sig))
		_ = unix.Kill(-pid, unix.SIGCONT)
		return
	}
	s.jobStopped = true
	s.mu.Unlock()

	_ = setForeground(fd, s.ownPgrp)
	// Stop like a job so the shell above sees it; execution resumes here
	// on SIGCONT (fg or bg).
	_ = unix.Kill(os.Getpid(), unix.SIGSTOP)
	if foregroundOwner(fd) {
		_ = setForeground(fd, pid)
	}
	s.mu.Lock()
	s.jobStopped = false
	s.mu.Unlock()
	_ = unix.Kill(-pid, unix.SIGCONT)
}

// groupEmpty reports whether the child's process group has no member left
// (none at all, or, when orphans go to another reaper, none alive).
func (s *Supervisor) groupEmpty(ownReaper bool) bool {
	pgid := s.Pid()
	if unix.Kill(-pgid, 0) == unix.ESRCH {
		return true
	}
	return !ownReaper && !groupHasLiving(pgid)
}

// finishGroup stops what is left of the child's process group after the
// child exited, bounded by the grace and KillTimeout.
func (s *Supervisor) finishGroup() {
	if unix.Kill(-s.Pid(), 0) == unix.ESRCH {
		return // the common case: nothing left, no further look needed
	}
	own := reapsOrphans()
	if s.groupEmpty(own) {
		return
	}
	s.mu.Lock()
	pgid := s.pid
	deadline := time.Now().Add(s.opts.StopTimeout)
	if s.stopArmed && s.killAt.Before(deadline) {
		deadline = s.killAt
	}
	killed := s.groupKilled
	s.mu.Unlock()

	var killC, giveUp <-chan time.Time
	if killed {
		giveUp = time.After(s.opts.KillTimeout)
	} else {
		s.log.Info("child exited; terminating what is left of its process group", "pgid", pgid, "grace", time.Until(deadline))
		_ = unix.Kill(-pgid, unix.SIGTERM)
		// A stopped process would hold TERM pending until the SIGKILL;
		// continue it so it can act on TERM now (as systemd does).
		_ = unix.Kill(-pgid, unix.SIGCONT)
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		killC = t.C
	}
	tick := time.NewTicker(leftoverPoll)
	defer tick.Stop()
	for {
		select {
		case <-s.sigchld:
			s.reapAll()
		case <-tick.C:
		case <-killC:
			killC = nil
			s.log.Warn("grace period over: killing what is left of the child's process group", "pgid", pgid)
			_ = unix.Kill(-pgid, unix.SIGKILL)
			giveUp = time.After(s.opts.KillTimeout)
		case <-giveUp:
			s.log.Warn("process group still not empty after SIGKILL; giving up waiting", "pgid", pgid, "waited", s.opts.KillTimeout)
			return
		}
		if s.groupEmpty(own) {
			s.reapAll()
			return
		}
	}
}

// Close stops listening for SIGCHLD and disarms the grace timer. It does not
// touch the child: call it after Wait, when the launcher is exiting.
func (s *Supervisor) Close() {
	signal.Stop(s.sigchld)
	s.mu.Lock()
	if s.killTimer != nil {
		s.killTimer.Stop()
	}
	s.mu.Unlock()
}

// BecomeSubreaper makes the launcher the reaper of its descendants' orphans
// when it is not PID 1 (PR_SET_CHILD_SUBREAPER). As PID 1 it does nothing.
// On failure the caller should say once, clearly, that orphans will go to
// the real init instead.
func BecomeSubreaper() error {
	if os.Getpid() == 1 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("cannot become a child subreaper (orphans will be re-parented to init, not reaped here): %w", err)
	}
	return nil
}

// SetParentDeathSignalFor asks the kernel to send sig to the launcher when
// its parent dies (tini -p), so the signal flows through ordinary forwarding
// to the child. As PID 1 it does nothing: the parent is outside the
// container. The setting belongs to a thread, so it is made from a goroutine
// that keeps its OS thread for the life of the process. parent is the
// launcher's parent as read first thing in main: the setting is made late
// (after a privilege drop, which clears it), and if the parent is no longer
// that process once the setting is in place, it died before the kernel could
// tell, and sig is raised at once.
func SetParentDeathSignalFor(sig syscall.Signal, parent int) error {
	if sig == 0 || os.Getpid() == 1 {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must live as long as the process
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sig), 0, 0, 0); err != nil {
			errc <- fmt.Errorf("set parent-death signal: %w", err)
			return
		}
		errc <- nil
		select {}
	}()
	if err := <-errc; err != nil {
		return err
	}
	if os.Getppid() != parent {
		return unix.Kill(os.Getpid(), sig)
	}
	return nil
}
