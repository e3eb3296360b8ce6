package integration

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// pid1Sentinel follows each signal under test: once the child has it, the
// signal before it has had its chance to arrive too.
const pid1Sentinel = syscall.SIGUSR2

// pid1NotForwarded lists, per init, the catchable signals it does not pass to
// the child (sent from outside to the init as PID 1 of the namespace). The
// rest of 1..64 (less KILL, STOP, CHLD, URG, PROF and 32/33) must arrive.
//   - codex-launch: the synchronous faults (forwarding them would hide its own
//     crash), PIPE (caught and dropped), TTIN/TTOU (its own terminal signals).
//   - tini: the same faults plus ABRT, and TTIN/TTOU, all left at their
//     default action, which the kernel ignores for a namespace's init; PIPE
//     is forwarded.
//   - dumb-init: forwards everything, faults included; TSTP/TTIN/TTOU become
//     SIGSTOP for the child and stop dumb-init itself.
var pid1NotForwarded = map[string][]syscall.Signal{
	pid1Launcher: {syscall.SIGPIPE, syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGTTIN, syscall.SIGTTOU},
	pid1Tini:     {syscall.SIGABRT, syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGTTIN, syscall.SIGTTOU},
	pid1Dumb:     {syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU},
}

// pid1TestedSignals are sent one by one, terminal-stop signals (dumb-init
// turns them into SIGSTOP) and faults near the end, TERM at the very end (it
// ends the child). Signal
// 34 is left out: the Go runtime cannot catch it (it is musl's SIGSYNCCALL),
// so the Go child would die of it.
func pid1TestedSignals() []syscall.Signal {
	var out []syscall.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPROF, 32, 33, 34,
			pid1Sentinel, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
			continue
		}
		if !pid1Fault(s) {
			out = append(out, s)
		}
	}
	out = append(out, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	// Faults last: sent with kill(2) they have killed a Go init.
	return append(out, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSYS)
}

func pid1Fault(s syscall.Signal) bool {
	switch s {
	case syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSYS:
		return true
	}
	return false
}

// deliver sends sig and then the sentinel to the init and reports whether the
// child got sig. It resumes an init (and child) that the signal stopped.
// want says whether sig is expected through: then it is waited for a while
// longer, so that a loaded machine does not make it look dropped.
func (p pid1Report) deliver(t *testing.T, r *pid1Run, sig syscall.Signal, want bool) (got bool, note string) {
	t.Helper()
	before := p.count(pid1Sentinel)
	r.signal(sig)
	time.Sleep(2 * time.Millisecond) // keep sig ahead of the sentinel
	r.signal(pid1Sentinel)
	arrived := pid1WaitFor(time.Second, func() bool { return p.count(pid1Sentinel) > before || !r.running() })
	if !r.running() {
		return false, fmt.Sprintf("init died (exit %d)", r.code)
	}
	// A stop may land just after the sentinel (dumb-init forwards pending
	// signals lowest number first): look again a moment later.
	time.Sleep(20 * time.Millisecond)
	stopped := func(pid int) bool { st, ok := readProcStat(pid); return ok && st.State == 'T' }
	child := 0
	if kids := testenv.ChildrenOf(r.initPID()); len(kids) > 0 {
		child = kids[0]
	}
	switch {
	case stopped(r.initPID()):
		note = "init stopped itself"
	case stopped(child):
		note = "child stopped"
	case !arrived:
		t.Errorf("sentinel after %s never reached the child", pid1ShortName(sig))
		return false, ""
	}
	if note != "" {
		_ = syscall.Kill(r.initPID(), syscall.SIGCONT)
		if !pid1WaitFor(2*time.Second, func() bool { return p.count(pid1Sentinel) > before && !stopped(child) }) {
			t.Errorf("after %s (%s), CONT to the init did not bring the child back", pid1ShortName(sig), note)
		}
	}
	if !r.running() {
		return false, fmt.Sprintf("init died (exit %d)", r.code)
	}
	linger := 30 * time.Millisecond
	if want {
		linger = time.Second
	}
	pid1WaitFor(linger, func() bool { return p.count(sig) > 0 })
	return p.count(sig) > 0, note
}

// pid1ForwardEverySignal sends every catchable signal to the init and checks
// which reach the child, against pid1NotForwarded. The init must survive
// them all (a Go init that does not handle a kill(2)-sent fault signal dies
// of it).
func pid1ForwardEverySignal(t *testing.T, h *pid1Harness, in *pid1Init) string {
	rep := h.report(t)
	o := pid1Opts{stopTimeout: 30 * time.Second}
	r, _ := h.start(t, in, o, true, h.child, "catch", "-out", rep.path, "-exit-on", "15")
	rep.waitReady(t, r, 1)
	skip := map[syscall.Signal]bool{}
	for _, s := range pid1NotForwarded[in.name] {
		skip[s] = true
	}
	var missing, extra, notes []string
	var died string
	for _, sig := range pid1TestedSignals() {
		got, note := rep.deliver(t, r, sig, !skip[sig])
		if note != "" {
			notes = append(notes, pid1ShortName(sig)+": "+note)
		}
		if !r.running() {
			t.Errorf("init died after %s was sent to it: exit %d; stderr: %.300s", pid1ShortName(sig), r.code, r.stderr())
			died = fmt.Sprintf("init died of %s sent by kill(2) (exit %d)", pid1ShortName(sig), r.code)
			break
		}
		switch {
		case got && skip[sig]:
			extra = append(extra, pid1ShortName(sig))
		case !got && !skip[sig]:
			missing = append(missing, pid1ShortName(sig))
		}
	}
	if died == "" {
		r.signal(syscall.SIGTERM)
		code := r.mustExit(5 * time.Second)
		if rep.count(syscall.SIGTERM) == 0 {
			t.Errorf("TERM did not reach the child")
		}
		if code != 0 {
			t.Errorf("child exits 0 on TERM, init exited %d", code)
		}
	}
	if len(missing) > 0 {
		t.Errorf("not forwarded, want forwarded: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("forwarded, want not forwarded: %v", extra)
	}
	var not []string
	for _, s := range pid1NotForwarded[in.name] {
		not = append(not, pid1ShortName(s))
	}
	cell := "all but " + strings.Join(not, " ")
	if len(missing) > 0 {
		cell += "; also missing: " + strings.Join(missing, " ")
	}
	if len(extra) > 0 {
		cell += "; also forwarded: " + strings.Join(extra, " ")
	}
	if died != "" {
		cell += "; " + died
	}
	if len(notes) > 0 {
		cell += "; " + strings.Join(notes, ", ")
	}
	return cell
}

// pid1ForwardGroup: the child starts three more processes in its process
// group. USR1 to the init reaches only the child by default, all four in
// group mode (codex-launch --signal-group, tini -g, dumb-init's default; -c
// for child only).
func pid1ForwardGroup(t *testing.T, h *pid1Harness, in *pid1Init) string {
	var cells []string
	for _, mode := range []struct {
		name string
		o    pid1Opts
		want int
	}{
		{"child", pid1Opts{childOnly: true}, 1},
		{"group", pid1Opts{group: true}, 4},
	} {
		rep := h.report(t)
		r, unsupported := h.start(t, in, mode.o, true, h.child, "catch", "-out", rep.path, "-group", "3", "-exit-on", "15")
		if unsupported != "" {
			cells = append(cells, mode.name+": "+unsupported)
			continue
		}
		rep.waitReady(t, r, 4)
		r.signal(syscall.SIGUSR1)
		pid1WaitFor(2*time.Second, func() bool { return rep.count(syscall.SIGUSR1) >= mode.want })
		time.Sleep(50 * time.Millisecond)
		got := rep.count(syscall.SIGUSR1)
		if got != mode.want {
			t.Errorf("%s mode: USR1 reached %d of 4 processes, want %d; init stderr: %s", mode.name, got, mode.want, r.stderr())
		}
		cells = append(cells, fmt.Sprintf("%s mode: %d/4", mode.name, got))
		r.signal(syscall.SIGTERM)
		r.mustExit(5 * time.Second)
	}
	return strings.Join(cells, ", ")
}

// pid1Rewrite: USR1 rewritten to WINCH, HUP dropped, TERM rewritten to INT
// (dumb-init -r, codex-launch --rewrite; tini has no such option).
func pid1Rewrite(t *testing.T, h *pid1Harness, in *pid1Init) string {
	rep := h.report(t)
	o := pid1Opts{rewrite: [][2]int{{10, 28}, {1, 0}, {15, 2}}}
	r, unsupported := h.start(t, in, o, true, h.child, "catch", "-out", rep.path, "-exit-on", "2")
	if unsupported != "" {
		return unsupported
	}
	rep.waitReady(t, r, 1)
	if got, _ := rep.deliver(t, r, syscall.SIGUSR1, false); got {
		t.Errorf("USR1 reached the child unchanged")
	}
	pid1WaitFor(time.Second, func() bool { return rep.count(syscall.SIGWINCH) > 0 })
	if rep.count(syscall.SIGWINCH) != 1 {
		t.Errorf("USR1 rewritten to WINCH: child got WINCH %d times, want 1", rep.count(syscall.SIGWINCH))
	}
	if got, _ := rep.deliver(t, r, syscall.SIGHUP, false); got {
		t.Errorf("HUP (rewritten to 0) reached the child")
	}
	r.signal(syscall.SIGTERM)
	code := r.mustExit(5 * time.Second)
	if rep.count(syscall.SIGINT) != 1 || rep.count(syscall.SIGTERM) != 0 {
		t.Errorf("TERM rewritten to INT: child got INT %d and TERM %d times", rep.count(syscall.SIGINT), rep.count(syscall.SIGTERM))
	}
	if code != 0 {
		t.Errorf("init exited %d, want 0 (child exits 0 on INT)", code)
	}
	return "USR1→WINCH, HUP dropped, TERM→INT"
}

// pid1BurstThenTerm: 1,000 USR1 as fast as possible, then TERM. Plain
// signals coalesce, so the child may see fewer USR1, but the TERM must never
// be lost: the child (TERM at its default action) dies of it and the init
// exits 143. codex-launch gets a 30 s grace so its SIGKILL cannot stand in
// for a lost TERM. Three rounds.
func pid1BurstThenTerm(t *testing.T, h *pid1Harness, in *pid1Init) string {
	var counts []string
	for round := 0; round < 3; round++ {
		rep := h.report(t)
		r, _ := h.start(t, in, pid1Opts{stopTimeout: 30 * time.Second}, true, h.child, "catch", "-out", rep.path, "-default-term")
		rep.waitReady(t, r, 1)
		pid := r.initPID()
		for i := 0; i < 1000; i++ {
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				t.Fatalf("kill: %v", err)
			}
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatalf("kill: %v", err)
		}
		code, ok := r.wait(5 * time.Second)
		if !ok {
			t.Fatalf("round %d: TERM after 1000 USR1 lost: init still running after 5 s", round)
		}
		if code != 143 {
			t.Errorf("round %d: init exited %d, want 143; stderr: %s", round, code, r.stderr())
		}
		counts = append(counts, strconv.Itoa(rep.count(syscall.SIGUSR1)))
	}
	return "TERM kept in 3/3 rounds (USR1 seen by child: " + strings.Join(counts, ", ") + ")"
}
