package integration

// The PID-1 tests run the built codex-launch, tini and dumb-init side by side
// as the init of a fresh PID namespace (`unshare --pid --fork --mount-proc`),
// with a scripted child (testdata/pid1/child), and check each init against
// what it is known to do. Where the inits differ, the expectation is written
// per init, so a difference is asserted rather than hidden; the observations
// are collected into a table (written to $PID1_COMPARE_OUT when set) that
// docs/pid1-compare.md reproduces.
//
// Everything hangs off one test, TestPID1, which builds the scripted child;
// codex-launch is the package's build (main_test.go).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

const (
	pid1Launcher = "codex-launch"
	pid1Tini     = "tini"
	pid1Dumb     = "dumb-init"
)

// pid1Opts are the init features a scenario asks for. Each init maps them to
// its own flags, or says it has no such feature.
type pid1Opts struct {
	group       bool             // forward to the child's whole process group
	childOnly   bool             // forward to the child alone (dumb-init -c)
	rewrite     [][2]int         // from, to (0 drops)
	exitZero    []int            // child codes reported as 0
	pdeathsig   syscall.Signal   // signal for the child when the init's parent dies
	subreaper   bool             // ask for subreaping when not PID 1
	stopTimeout time.Duration    // grace before SIGKILL after a stop signal
	stopSignals []syscall.Signal // nil: the init's default
}

type pid1Init struct {
	name string
	path string
	err  error // the binary could not be built or found
	env  []string
	// ownHome gives each run an empty CODEX_HOME of its own.
	ownHome bool
	// argv returns the init's command line, or unsupported naming the
	// feature it lacks.
	argv func(o pid1Opts) (argv []string, unsupported string)
}

type pid1Harness struct {
	child string // the scripted child binary
	dir   string
	inits []*pid1Init
	res   *pid1Results
}

func TestPID1(t *testing.T) {
	testenv.RequirePIDNamespace(t)
	tini := testenv.RequireCommand(t, "tini", "tini")
	dumb := testenv.RequireCommand(t, "dumb-init", "dumb-init")
	dir := t.TempDir()
	child, err := testenv.Build(dir, "./integration/testdata/pid1/child", "pid1child")
	if err != nil {
		t.Fatalf("build the scripted child: %v", err)
	}
	launcher := launcherPath
	h := &pid1Harness{child: child, dir: dir, res: newPID1Results()}
	h.inits = []*pid1Init{
		{name: pid1Launcher, path: launcher, err: launcherErr,
			// An empty CODEX_HOME of its own per run (see startArgv): with no
			// auth.json the credential side has nothing to do.
			ownHome: true,
			env:     []string{"CODEX_LAUNCH_LOG_LEVEL=" + pid1LogLevel()},
			argv: func(o pid1Opts) ([]string, string) {
				a := []string{launcher}
				if o.stopTimeout > 0 {
					a = append(a, "--stop-timeout", o.stopTimeout.String())
				}
				if o.stopSignals != nil {
					var names []string
					for _, s := range o.stopSignals {
						names = append(names, strconv.Itoa(int(s)))
					}
					a = append(a, "--stop-signals", strings.Join(names, ","))
				}
				if o.group {
					a = append(a, "--signal-group")
				}
				if len(o.rewrite) > 0 {
					var rw []string
					for _, r := range o.rewrite {
						rw = append(rw, fmt.Sprintf("%d:%d", r[0], r[1]))
					}
					a = append(a, "--rewrite", strings.Join(rw, ","))
				}
				for _, c := range o.exitZero {
					a = append(a, "--exit-zero", strconv.Itoa(c))
				}
				if o.pdeathsig != 0 {
					a = append(a, "--pdeathsig", strconv.Itoa(int(o.pdeathsig)))
				}
				return append(a, "--"), ""
			}},
		{name: pid1Tini, path: tini,
			argv: func(o pid1Opts) ([]string, string) {
				a := []string{tini}
				if len(o.rewrite) > 0 {
					return nil, "no signal rewrite option"
				}
				if o.subreaper {
					a = append(a, "-s")
				}
				if o.group {
					a = append(a, "-g")
				}
				for _, c := range o.exitZero {
					a = append(a, "-e", strconv.Itoa(c))
				}
				if o.pdeathsig != 0 {
					a = append(a, "-p", pid1SigName(o.pdeathsig))
				}
				return append(a, "--"), ""
			}},
		{name: pid1Dumb, path: dumb,
			argv: func(o pid1Opts) ([]string, string) {
				a := []string{dumb}
				switch {
				case len(o.exitZero) > 0:
					return nil, "no exit-code mapping option"
				case o.pdeathsig != 0:
					return nil, "no parent-death signal option"
				}
				if o.childOnly {
					a = append(a, "-c")
				}
				for _, r := range o.rewrite {
					a = append(a, "-r", fmt.Sprintf("%d:%d", r[0], r[1]))
				}
				return append(a, "--"), ""
			}},
	}
	if out := os.Getenv("PID1_COMPARE_OUT"); out != "" {
		t.Cleanup(func() {
			if err := os.WriteFile(out, []byte(h.res.markdown()), 0o644); err != nil {
				t.Errorf("write %s: %v", out, err)
			}
		})
	}

	// Timing-measured scenarios first, alone, so the heavy ones cannot skew
	// them; then everything else in parallel.
	t.Run("timed", func(t *testing.T) {
		h.each(t, "stop-ignored-term", false, pid1StopIgnoredTerm)
	})
	t.Run("parallel", func(t *testing.T) {
		h.each(t, "exit-codes", true, pid1ExitCodes)
		h.each(t, "killed-by-signal", true, pid1KilledBySignal)
		h.each(t, "exec-failure", true, pid1ExecFailure)
		h.each(t, "exit-zero-143", true, pid1ExitZero)
		h.each(t, "cwd-and-env", true, pid1CwdAndEnv)
		h.each(t, "reap-grandchildren", true, pid1ReapGrandchildren)
		h.each(t, "reap-10000-orphans", true, pid1ReapOrphans)
		h.each(t, "forward-every-signal", true, pid1ForwardEverySignal)
		h.each(t, "forward-child-or-group", true, pid1ForwardGroup)
		h.each(t, "rewrite-and-drop", true, pid1Rewrite)
		h.each(t, "burst-then-term", true, pid1BurstThenTerm)
		h.each(t, "stop-default-term", true, pid1StopDefaultTerm)
		h.each(t, "leftovers-after-child-exit", true, pid1Leftovers)
		h.each(t, "left-the-group-setsid", true, pid1LeftTheGroup)
		h.each(t, "not-pid1-subreaper", true, pid1NotPID1Subreaper)
		h.each(t, "not-pid1-parent-death", true, pid1ParentDeath)
		h.each(t, "tty-ctrl-c-and-job-control", true, pid1TTY)
	})
}

// each runs scenario fn once per init, as subtests named scenario/init.
func (h *pid1Harness) each(t *testing.T, scenario string, parallel bool, fn func(t *testing.T, h *pid1Harness, in *pid1Init) string) {
	h.res.register(scenario)
	t.Run(scenario, func(t *testing.T) {
		if parallel {
			t.Parallel()
		}
		for _, in := range h.inits {
			t.Run(in.name, func(t *testing.T) {
				if parallel {
					t.Parallel()
				}
				if in.err != nil {
					t.Fatalf("%s is not available: %v", in.name, in.err)
				}
				cell := fn(t, h, in)
				if t.Failed() {
					cell = "FAIL: " + cell
				}
				h.res.note(scenario, in.name, cell)
			})
		}
	})
}

// pid1Run is one init process, inside a new PID namespace (ns), or else as
// the child of a shim that plays its parent (a subreaper, so orphans the init
// fails to adopt are reaped there and never leak onto the machine).
type pid1Run struct {
	t       *testing.T
	ns      bool
	cmd     *exec.Cmd
	started time.Time
	outPath string
	errPath string
	done    chan struct{}
	ended   time.Time
	code    int
	initPid int
}

// start runs init in with opts and the child argv. The init's output goes to
// files, not pipes: processes that outlive the init must not keep a test
// waiting for EOF.
func (h *pid1Harness) start(t *testing.T, in *pid1Init, o pid1Opts, ns bool, child ...string) (*pid1Run, string) {
	t.Helper()
	argv, unsupported := in.argv(o)
	if unsupported != "" {
		return nil, unsupported
	}
	argv = append(argv, child...)
	if ns {
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	} else {
		argv = append([]string{h.child, "shim", "--"}, argv...)
	}
	return h.startArgv(t, in, ns, nil, argv...), ""
}

func (h *pid1Harness) startArgv(t *testing.T, in *pid1Init, ns bool, attr *syscall.SysProcAttr, argv ...string) *pid1Run {
	t.Helper()
	dir := t.TempDir()
	r := &pid1Run{t: t, ns: ns, outPath: filepath.Join(dir, "stdout"), errPath: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	stdout, err := os.Create(r.outPath)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(r.errPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Env = append(os.Environ(), in.env...)
	if in.ownHome {
		r.cmd.Env = append(r.cmd.Env, "CODEX_HOME="+pid1Home(t))
	}
	r.cmd.Stdout, r.cmd.Stderr = stdout, stderr
	r.cmd.SysProcAttr = attr
	r.started = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	stdout.Close()
	stderr.Close()
	go func() {
		_ = r.cmd.Wait() // the status is read from ProcessState
		r.ended = time.Now()
		r.code = pid1Code(r.cmd.ProcessState)
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			pid1KillTree(r.cmd.Process.Pid)
			<-r.done
		}
	})
	return r
}

// pid1LogLevel is codex-launch's log level in these tests: warn, or
// $PID1_LOG_LEVEL (debug shows every signal forwarded and child reaped).
func pid1LogLevel() string {
	if l := os.Getenv("PID1_LOG_LEVEL"); l != "" {
		return l
	}
	return "warn"
}

// pid1Home is an empty CODEX_HOME for one run of codex-launch.
func pid1Home(t *testing.T) string {
	home := filepath.Join(t.TempDir(), "codex-home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

func pid1Code(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// wait returns the exit code, or ok=false when the init is still running
// after d.
func (r *pid1Run) wait(d time.Duration) (code int, ok bool) {
	select {
	case <-r.done:
		return r.code, true
	case <-time.After(d):
		return 0, false
	}
}

// mustExit fails the test when the init is still running after d.
func (r *pid1Run) mustExit(d time.Duration) int {
	r.t.Helper()
	code, ok := r.wait(d)
	if !ok {
		r.t.Fatalf("init still running after %s; stderr: %s", d, r.stderr())
	}
	return code
}

func (r *pid1Run) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

func (r *pid1Run) stdout() string { b, _ := os.ReadFile(r.outPath); return string(b) }
func (r *pid1Run) stderr() string { b, _ := os.ReadFile(r.errPath); return string(b) }

// initPID is the host pid of the init: the one unshare forked into the new
// namespace, or the shim's child.
func (r *pid1Run) initPID() int {
	r.t.Helper()
	if r.initPid != 0 {
		return r.initPid
	}
	deadline := time.Now().Add(30 * time.Second) // a hang, not a slow machine
	for time.Now().Before(deadline) {
		if kids := testenv.ChildrenOf(r.cmd.Process.Pid); len(kids) > 0 {
			r.initPid = kids[0]
			return kids[0]
		}
		time.Sleep(time.Millisecond)
	}
	r.t.Fatalf("%s (pid %d) never started the init", r.cmd.Path, r.cmd.Process.Pid)
	return 0
}

// signal sends sig to the init (host pid).
func (r *pid1Run) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := syscall.Kill(r.initPID(), sig); err != nil {
		r.t.Fatalf("kill %d %v: %v", r.initPID(), sig, err)
	}
}

// pid1KillTree SIGKILLs pid and every descendant (found before killing).
func pid1KillTree(pid int) {
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// pid1Lines reads the child's report file: "PID ready" and "PID SIGNUM" lines.
type pid1Report struct {
	path string
}

func (h *pid1Harness) report(t *testing.T) pid1Report {
	return pid1Report{path: filepath.Join(t.TempDir(), "signals")}
}

func (p pid1Report) lines() []string {
	b, _ := os.ReadFile(p.path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// readyPIDs are the pids (in the child's namespace) that reported ready.
func (p pid1Report) readyPIDs() []string {
	var out []string
	for _, l := range p.lines() {
		if f := strings.Fields(l); len(f) == 2 && f[1] == "ready" {
			out = append(out, f[0])
		}
	}
	return out
}

// received maps each signal number to the pids that got it.
func (p pid1Report) received() map[int][]string {
	out := map[int][]string{}
	for _, l := range p.lines() {
		f := strings.Fields(l)
		if len(f) != 2 || f[1] == "ready" {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err == nil {
			out[n] = append(out[n], f[0])
		}
	}
	return out
}

func (p pid1Report) count(sig syscall.Signal) int { return len(p.received()[int(sig)]) }

// waitFor polls cond until it holds or d passes.
func pid1WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p pid1Report) waitReady(t *testing.T, r *pid1Run, n int) {
	t.Helper()
	if !pid1WaitFor(10*time.Second, func() bool { return len(p.readyPIDs()) >= n || !r.running() }) || len(p.readyPIDs()) < n {
		t.Fatalf("child never reported ready (%d of %d); init stderr: %s", len(p.readyPIDs()), n, r.stderr())
	}
}

var pid1Names = map[syscall.Signal]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS", 8: "FPE", 9: "KILL",
	10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM", 16: "STKFLT", 17: "CHLD",
	18: "CONT", 19: "STOP", 20: "TSTP", 21: "TTIN", 22: "TTOU", 23: "URG", 24: "XCPU", 25: "XFSZ",
	26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO", 30: "PWR", 31: "SYS",
}

func pid1SigName(s syscall.Signal) string {
	if n, ok := pid1Names[s]; ok {
		return "SIG" + n
	}
	return fmt.Sprintf("SIGRTMIN+%d", int(s)-34)
}

func pid1ShortName(s syscall.Signal) string {
	if n, ok := pid1Names[s]; ok {
		return n
	}
	return fmt.Sprintf("RTMIN+%d", int(s)-34)
}

// pid1Results is the comparison table: one row per scenario, one column per
// init, each cell what the test observed.
type pid1Results struct {
	mu    sync.Mutex
	cells map[string]map[string]string
	order []string
}

func newPID1Results() *pid1Results { return &pid1Results{cells: map[string]map[string]string{}} }

// register fixes the table's row order: the order the scenarios are run in.
func (r *pid1Results) register(scenario string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cells[scenario] == nil {
		r.cells[scenario] = map[string]string{}
		r.order = append(r.order, scenario)
	}
}

// note records a cell of a registered scenario.
func (r *pid1Results) note(scenario, init, cell string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cells[scenario][init] = cell
}

func (r *pid1Results) markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "| scenario | %s | %s | %s |\n|---|---|---|---|\n", pid1Launcher, pid1Tini, pid1Dumb)
	for _, s := range r.order {
		c := r.cells[s]
		if len(c) == 0 {
			continue // not run (a -run filter)
		}
		esc := func(v string) string { return strings.ReplaceAll(v, "|", "\\|") }
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s, esc(c[pid1Launcher]), esc(c[pid1Tini]), esc(c[pid1Dumb]))
	}
	return b.String()
}
