package signals

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// neverForwarded reports the signals a Forwarder never passes on:
//   - CHLD belongs to the wait loop (package supervise);
//   - URG is the Go runtime's goroutine-preemption signal, raised at the
//     launcher itself many times a second, and PROF is the runtime profiler's;
//   - SEGV, BUS, FPE, ILL, TRAP and SYS are synchronous faults of the
//     launcher's own code: forwarding them would hide a crash (when someone
//     sends one with kill, it is caught and dropped: see caughtToDrop);
//   - KILL and STOP cannot be caught;
//   - TTIN and TTOU are the kernel telling the launcher's own process group
//     that it touched the terminal from the background. Left at their default
//     action, a launcher under an interactive shell stops as any job would and
//     the shell can resume it; as PID 1 the kernel never stops an init, and a
//     background read or write just fails. Catching them instead would make a
//     terminal write under `stty tostop` restart forever. tini ignores them too.
//   - 32 and 33 are the C library's internal signals (the Go runtime uses 33
//     too), and the Go runtime reserves 34 (musl's internal signal; see Go
//     issue 39343): signal.Notify cannot catch it, so RTMIN (34) itself is
//     never forwarded; RTMIN+1 (35) to RTMAX (64) are;
//   - PIPE is caught and dropped (see caughtToDrop).
func neverForwarded(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGCHLD, unix.SIGURG, unix.SIGPROF,
		unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS,
		unix.SIGKILL, unix.SIGSTOP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPIPE,
		32, 33, 34:
		return true
	}
	return false
}

// Forwardable reports whether a Forwarder passes sig on.
func Forwardable(sig syscall.Signal) bool {
	return sig >= 1 && sig <= maxSignal && !neverForwarded(sig)
}

// caughtToDrop are caught only so that they cannot hurt the launcher, and are
// never passed on (a fixed table, never modified):
//   - PIPE: a launcher whose stdout was closed must not die of it; the child
//     gets its own SIGPIPE when it writes there;
//   - the fault signals when someone sends them with kill(2): the Go runtime
//     would otherwise treat a sent SIGSEGV or SIGILL as a crash of its own
//     and exit. A real fault of the launcher's code still crashes it with a
//     trace: the runtime never hands a kernel-generated fault to a channel.
var caughtToDrop = []syscall.Signal{
	unix.SIGPIPE, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS,
}

// Caught lists every signal a Forwarder registers for: the forwardable ones
// plus those caught to be dropped (PIPE, and the faults when sent by kill).
func Caught() []os.Signal {
	out := make([]os.Signal, 0, maxSignal)
	for n := syscall.Signal(1); n <= maxSignal; n++ {
		if Forwardable(n) {
			out = append(out, n)
		}
	}
	for _, n := range caughtToDrop {
		out = append(out, n)
	}
	return out
}

// DefaultStopSignals are the signals that mean "stop" to a container runtime
// or a person: docker stop sends TERM, Ctrl-C is INT, Ctrl-\ is QUIT.
func DefaultStopSignals() []syscall.Signal {
	return []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT}
}

// Rewrite maps a received signal to the one sent on; 0 drops it (dumb-init's
// -r). Signals not in the map pass unchanged.
type Rewrite map[syscall.Signal]syscall.Signal

// ParseRewrite reads "TERM:INT,USR1:0". The left side must be a forwardable
// signal (rewriting one that is never forwarded would silently do nothing);
// the right side is any signal, or 0 to drop.
func ParseRewrite(spec string) (Rewrite, error) {
	r := Rewrite{}
	if strings.TrimSpace(spec) == "" {
		return r, nil
	}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fmt.Errorf("rewrite %q: want FROM:TO (e.g. TERM:INT, or USR1:0 to drop)", pair)
		}
		f, err := Parse(from)
		if err != nil {
			return nil, fmt.Errorf("rewrite %q: %w", pair, err)
		}
		if !Forwardable(f) {
			return nil, fmt.Errorf("rewrite %q: %s is never forwarded, so it cannot be rewritten", pair, Name(f))
		}
		var t syscall.Signal
		if strings.TrimSpace(to) != "0" {
			if t, err = Parse(to); err != nil {
				return nil, fmt.Errorf("rewrite %q: %w", pair, err)
			}
		}
		if _, dup := r[f]; dup {
			return nil, fmt.Errorf("rewrite %q: %s is rewritten twice", pair, Name(f))
		}
		r[f] = t
	}
	return r, nil
}

// Apply gives the signal to send for a received one; ok is false when the
// table drops it.
func (r Rewrite) Apply(sig syscall.Signal) (out syscall.Signal, ok bool) {
	if to, found := r[sig]; found {
		return to, to != 0
	}
	return sig, true
}

// String writes the table back in ParseRewrite's form, sorted.
func (r Rewrite) String() string {
	keys := make([]int, 0, len(r))
	for k := range r {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		to := "0"
		if t := r[syscall.Signal(k)]; t != 0 {
			to = Name(t)
		}
		parts = append(parts, Name(syscall.Signal(k))+":"+to)
	}
	return strings.Join(parts, ",")
}
