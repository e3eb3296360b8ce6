package signals

import (
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	good := map[string]syscall.Signal{
		"TERM": unix.SIGTERM, "SIGTERM": unix.SIGTERM, "term": unix.SIGTERM, " sigterm ": unix.SIGTERM,
		"15": unix.SIGTERM, "1": unix.SIGHUP, "64": 64, "USR1": unix.SIGUSR1, "SIGWINCH": unix.SIGWINCH,
		"RTMIN": 34, "RTMIN+3": 37, "SIGRTMIN+30": 64, "RTMAX": 64, "RTMAX-1": 63, "RTMAX-30": 34,
		"IOT": unix.SIGABRT, "CLD": unix.SIGCHLD, "POLL": unix.SIGIO,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := []string{"", "0", "65", "-1", "FOO", "SIGFOO", "RTMIN-1", "RTMAX+1", "RTMIN+31", "RTMAX-31", "RTMIN+x", "TERM1"}
	for _, in := range bad {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
		}
	}
}

func TestNameRoundTrip(t *testing.T) {
	for n := syscall.Signal(1); n <= maxSignal; n++ {
		name := Name(n)
		got, err := Parse(name)
		if err != nil || got != n {
			t.Errorf("Parse(Name(%d)=%q) = %d, %v", n, name, got, err)
		}
	}
	if Name(unix.SIGTERM) != "TERM" || Name(37) != "RTMIN+3" || Name(34) != "RTMIN" {
		t.Errorf("unexpected names: %s %s %s", Name(unix.SIGTERM), Name(37), Name(34))
	}
}

func TestParseList(t *testing.T) {
	got, err := ParseList("TERM, INT,,QUIT")
	if err != nil || len(got) != 3 || got[0] != unix.SIGTERM || got[1] != unix.SIGINT || got[2] != unix.SIGQUIT {
		t.Fatalf("ParseList = %v, %v", got, err)
	}
	for _, in := range []string{"", " , ", "TERM,BOGUS"} {
		if _, err := ParseList(in); err == nil {
			t.Errorf("ParseList(%q): want an error", in)
		}
	}
}

func TestForwardable(t *testing.T) {
	never := []syscall.Signal{unix.SIGCHLD, unix.SIGURG, unix.SIGPROF, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE,
		unix.SIGILL, unix.SIGTRAP, unix.SIGSYS, unix.SIGKILL, unix.SIGSTOP, unix.SIGPIPE, unix.SIGTTIN, unix.SIGTTOU, 32, 33, 34, 0, 65}
	for _, s := range never {
		if Forwardable(s) {
			t.Errorf("%s (%d) must not be forwardable", Name(s), s)
		}
	}
	always := []syscall.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGABRT, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGALRM, unix.SIGTERM, unix.SIGCONT, unix.SIGTSTP, unix.SIGWINCH, unix.SIGXCPU, unix.SIGIO, unix.SIGPWR, 35, 50, 64}
	for _, s := range always {
		if !Forwardable(s) {
			t.Errorf("%s (%d) must be forwardable", Name(s), s)
		}
	}
	caught := map[syscall.Signal]bool{}
	for _, s := range Caught() {
		caught[s.(syscall.Signal)] = true
	}
	for _, s := range []syscall.Signal{unix.SIGPIPE, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP, unix.SIGSYS} {
		if !caught[s] {
			t.Errorf("%s must be caught (to be dropped)", Name(s))
		}
	}
	for _, s := range []syscall.Signal{unix.SIGCHLD, unix.SIGURG, unix.SIGPROF, unix.SIGTTIN, unix.SIGTTOU, 32, 33, 34} {
		if caught[s] {
			t.Errorf("%s must not be caught", Name(s))
		}
	}
	if len(caught) != 7+len(always)+ /* the rest of 1..64 not listed above */ countOthers(always, never) {
		t.Errorf("Caught has %d signals", len(caught))
	}
}

func countOthers(lists ...[]syscall.Signal) int {
	seen := map[syscall.Signal]bool{}
	for _, l := range lists {
		for _, s := range l {
			seen[s] = true
		}
	}
	n := 0
	for s := syscall.Signal(1); s <= maxSignal; s++ {
		if !seen[s] {
			n++
		}
	}
	return n
}

func TestParseRewrite(t *testing.T) {
	r, err := ParseRewrite("TERM:INT, USR1:0,SIGHUP:15,RTMIN+1:RTMIN+2")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   syscall.Signal
		out  syscall.Signal
		pass bool
	}{
		{unix.SIGTERM, unix.SIGINT, true},
		{unix.SIGUSR1, 0, false},
		{unix.SIGHUP, unix.SIGTERM, true},
		{35, 36, true},
		{unix.SIGUSR2, unix.SIGUSR2, true},
	}
	for _, c := range cases {
		out, ok := r.Apply(c.in)
		if out != c.out || ok != c.pass {
			t.Errorf("Apply(%s) = %d, %v; want %d, %v", Name(c.in), out, ok, c.out, c.pass)
		}
	}
	if s := r.String(); s != "HUP:TERM,USR1:0,TERM:INT,RTMIN+1:RTMIN+2" {
		t.Errorf("String() = %q", s)
	}
	if r, err := ParseRewrite(""); err != nil || len(r) != 0 {
		t.Errorf("empty rewrite: %v, %v", r, err)
	}
	var nilRewrite Rewrite
	if out, ok := nilRewrite.Apply(unix.SIGTERM); !ok || out != unix.SIGTERM {
		t.Error("a nil table must pass signals unchanged")
	}
}

func TestParseRewriteErrors(t *testing.T) {
	cases := map[string]string{
		"TERM":              "want FROM:TO",
		"TERM:BOGUS":        "unknown signal",
		"BOGUS:INT":         "unknown signal",
		"CHLD:TERM":         "never forwarded",
		"KILL:TERM":         "never forwarded",
		"TERM:INT,TERM:HUP": "rewritten twice",
		"TERM:65":           "out of range",
	}
	for in, want := range cases {
		_, err := ParseRewrite(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRewrite(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}
