package signals

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signal bounds as user space sees them. The kernel starts real-time
// signals at 32, but 32 and 33 are taken by the C library (and the Go runtime
// uses 33 for its own cross-thread calls), so RTMIN is 34, as in kill(1), tini
// and dumb-init.
const (
	rtMin = 34
	rtMax = 64
)

// maxSignal is the highest signal number on Linux.
const maxSignal = 64

// names maps the classic signal names (without "SIG") to their numbers.
var names = map[string]syscall.Signal{
	"HUP": unix.SIGHUP, "INT": unix.SIGINT, "QUIT": unix.SIGQUIT, "ILL": unix.SIGILL,
	"TRAP": unix.SIGTRAP, "ABRT": unix.SIGABRT, "IOT": unix.SIGIOT, "BUS": unix.SIGBUS,
	"FPE": unix.SIGFPE, "KILL": unix.SIGKILL, "USR1": unix.SIGUSR1, "SEGV": unix.SIGSEGV,
	"USR2": unix.SIGUSR2, "PIPE": unix.SIGPIPE, "ALRM": unix.SIGALRM, "TERM": unix.SIGTERM,
	"STKFLT": unix.SIGSTKFLT, "CHLD": unix.SIGCHLD, "CLD": unix.SIGCHLD, "CONT": unix.SIGCONT,
	"STOP": unix.SIGSTOP, "TSTP": unix.SIGTSTP, "TTIN": unix.SIGTTIN, "TTOU": unix.SIGTTOU,
	"URG": unix.SIGURG, "XCPU": unix.SIGXCPU, "XFSZ": unix.SIGXFSZ, "VTALRM": unix.SIGVTALRM,
	"PROF": unix.SIGPROF, "WINCH": unix.SIGWINCH, "IO": unix.SIGIO, "POLL": unix.SIGPOLL,
	"PWR": unix.SIGPWR, "SYS": unix.SIGSYS,
}

// canonical gives the preferred name for each classic number (IOT, CLD and
// POLL are aliases).
var canonical = [32]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS", 8: "FPE",
	9: "KILL", 10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM",
	16: "STKFLT", 17: "CHLD", 18: "CONT", 19: "STOP", 20: "TSTP", 21: "TTIN", 22: "TTOU",
	23: "URG", 24: "XCPU", 25: "XFSZ", 26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO",
	30: "PWR", 31: "SYS",
}

// Parse reads a signal written as a name ("TERM", "SIGTERM", "term"), a
// number ("15") or a real-time offset ("RTMIN+3", "SIGRTMAX-1", "RTMIN").
func Parse(s string) (syscall.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if name == "" {
		return 0, fmt.Errorf("empty signal name")
	}
	if n, err := strconv.Atoi(name); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal number %d out of range 1..%d", n, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	name = strings.TrimPrefix(name, "SIG")
	if sig, ok := names[name]; ok {
		return sig, nil
	}
	if sig, ok, err := parseRT(name); ok {
		return sig, err
	}
	return 0, fmt.Errorf("unknown signal %q (want a name such as TERM or SIGTERM, a number 1..%d, or RTMIN+n)", s, maxSignal)
}

// parseRT reads RTMIN, RTMIN+n, RTMAX, RTMAX-n; ok says the name had that shape.
func parseRT(name string) (sig syscall.Signal, ok bool, err error) {
	var base, sign int
	var rest string
	switch {
	case strings.HasPrefix(name, "RTMIN"):
		base, sign, rest = rtMin, 1, name[len("RTMIN"):]
	case strings.HasPrefix(name, "RTMAX"):
		base, sign, rest = rtMax, -1, name[len("RTMAX"):]
	default:
		return 0, false, nil
	}
	off := 0
	if rest != "" {
		want := byte('+')
		if sign < 0 {
			want = '-'
		}
		if rest[0] != want {
			return 0, true, fmt.Errorf("bad real-time signal %q: RTMIN takes +n, RTMAX takes -n", name)
		}
		off, err = strconv.Atoi(rest[1:])
		if err != nil || off < 0 {
			return 0, true, fmt.Errorf("bad real-time signal offset in %q", name)
		}
	}
	n := base + sign*off
	if n < rtMin || n > rtMax {
		return 0, true, fmt.Errorf("real-time signal %q is outside RTMIN..RTMAX (%d..%d)", name, rtMin, rtMax)
	}
	return syscall.Signal(n), true, nil
}

// Name gives the short name of sig: "TERM", "RTMIN+3", or its number when it
// has none (32, 33).
func Name(sig syscall.Signal) string {
	n := int(sig)
	switch {
	case n > 0 && n < len(canonical):
		return canonical[n]
	case n == rtMin:
		return "RTMIN"
	case n > rtMin && n <= rtMax:
		return "RTMIN+" + strconv.Itoa(n-rtMin)
	}
	return strconv.Itoa(n)
}

// ParseList reads a comma-separated list of signals ("TERM,INT,QUIT").
func ParseList(s string) ([]syscall.Signal, error) {
	var out []syscall.Signal
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		sig, err := Parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sig)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty signal list %q", s)
	}
	return out, nil
}
