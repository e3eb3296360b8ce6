// Command pid1 measures codex-launch as a container init side by side with
// tini, dumb-init and catatonit, in one run on one machine: start-up overhead
// (hyperfine), signal forwarding latency, the time to reap 10,000 orphans,
// the init's own peak RSS and idle CPU, and binary sizes. run.sh installs the
// peers and builds everything; this program does the measuring and prints a
// Markdown report.
//
// The same binary plays the children the measurements need (modes sigchild,
// storm, stormfork, idle), so nothing but public tools and this module is
// required.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/procstat"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pid1 run [flags] | sigchild | storm | stormfork | idle")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runAll(os.Args[2:])
	case "sigchild":
		err = sigchild()
	case "storm":
		err = storm(os.Args[2:])
	case "stormfork":
		err = stormfork(os.Args[2:])
	case "idle":
		time.Sleep(time.Hour)
	case "noop":
		// the floor of any Go program's start: the runtime alone
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pid1:", err)
		os.Exit(1)
	}
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// sigchild writes the CLOCK_MONOTONIC time of each SIGUSR1 it receives to
// stdout, 8 bytes each; one zero timestamp says it is ready.
func sigchild() error {
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, syscall.SIGUSR1)
	var b [8]byte
	if _, err := os.Stdout.Write(b[:]); err != nil {
		return err
	}
	for range ch {
		binary.LittleEndian.PutUint64(b[:], uint64(monoNow()))
		if _, err := os.Stdout.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

// rawFork forks a process that exits at once, touching nothing of the Go
// runtime in between.
func rawFork() (int, error) {
	r1, _, e := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r1 == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(r1), nil
}

// stormfork makes -n children that exit at once, waits until every one is a
// zombie, writes their pids (stdout, text) and the CLOCK_MONOTONIC time just
// before its own exit (stderr is not used; the last line is "t0 NS"), and
// exits: the kernel hands all the zombies to the init at once.
func stormfork(args []string) error {
	fs := flag.NewFlagSet("stormfork", flag.ExitOnError)
	n := fs.Int("n", 10000, "children")
	_ = fs.Parse(args)
	pids := make([]int, 0, *n)
	for i := 0; i < *n; i++ {
		p, err := rawFork()
		if err != nil {
			return fmt.Errorf("fork %d: %w", i, err)
		}
		pids = append(pids, p)
	}
	for _, p := range pids {
		for {
			st, err := procstat.Read(p)
			if err != nil {
				return fmt.Errorf("child %d vanished before its parent exited: %w", p, err)
			}
			if st.State == 'Z' {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	var w bytes.Buffer
	for _, p := range pids {
		fmt.Fprintln(&w, p)
	}
	fmt.Fprintf(&w, "t0 %d\n", monoNow())
	_, err := os.Stdout.Write(w.Bytes())
	return err
}

// storm runs stormfork and measures how long the init takes to reap all its
// zombies from the moment they became orphans: it spins on kill(pid, 0)
// (a zombie still answers) until each is gone. It prints "reap_ns N".
func storm(args []string) error {
	fs := flag.NewFlagSet("storm", flag.ExitOnError)
	n := fs.Int("n", 10000, "orphans")
	_ = fs.Parse(args)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	out, err := exec.Command(self, "stormfork", "-n", strconv.Itoa(*n)).Output()
	if err != nil {
		return fmt.Errorf("stormfork: %w", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != *n+2 || lines[*n] != "t0" {
		return fmt.Errorf("stormfork output: %d fields", len(lines))
	}
	t0, _ := strconv.ParseInt(lines[*n+1], 10, 64)
	for _, l := range lines[:*n] {
		p, _ := strconv.Atoi(l)
		deadline := time.Now().Add(30 * time.Second)
		for unix.Kill(p, 0) == nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("orphan %d not reaped after 30 s", p)
			}
			// Sleep rather than spin: a spinning measurer would take CPU
			// from the init it measures on a small machine.
			time.Sleep(50 * time.Microsecond)
		}
	}
	fmt.Printf("reap_ns %d\n", monoNow()-t0)
	return nil
}

// ---- the driver -------------------------------------------------------

type initDef struct {
	name string
	path string
	// argv for PID 1 of a namespace, and for a plain start (start-up time)
	pid1, plain []string
	env         []string
}

type result struct {
	startMedian, startOver float64 // ms
	latMedian, latP99      float64 // µs
	reapMedian             float64 // ms
	hwmKB                  int
	idleCPUms              float64
	size                   int64
	err                    []string
}

func runAll(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	launcher := fs.String("launcher", "", "codex-launch binary (stripped)")
	tini := fs.String("tini", "/usr/bin/tini", "tini")
	dumb := fs.String("dumb-init", "/usr/bin/dumb-init", "dumb-init")
	cat := fs.String("catatonit", "/usr/bin/catatonit", "catatonit")
	runs := fs.Int("runs", 300, "hyperfine runs per command")
	signals := fs.Int("signals", 1000, "signals for the latency measurement")
	orphans := fs.Int("orphans", 10000, "orphans to reap")
	reapRounds := fs.Int("reap-rounds", 5, "rounds of the orphan storm (median)")
	idle := fs.Duration("idle", 60*time.Second, "idle CPU measurement period")
	_ = fs.Parse(args)
	if *launcher == "" {
		return errors.New("-launcher is required")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	home, err := os.MkdirTemp("", "pid1bench-home")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	inits := []initDef{
		{name: "codex-launch", path: *launcher, pid1: []string{*launcher, "--"}, plain: []string{*launcher, "--"},
			env: []string{"CODEX_HOME=" + home, "CODEX_LAUNCH_LOG_LEVEL=error"}},
		{name: "tini", path: *tini, pid1: []string{*tini, "--"}, plain: []string{*tini, "-s", "--"}},
		{name: "dumb-init", path: *dumb, pid1: []string{*dumb, "--"}, plain: []string{*dumb, "--"}},
		{name: "catatonit", path: *cat, pid1: []string{*cat, "--"}, plain: []string{*cat, "--"}},
	}
	res := map[string]*result{}
	for _, in := range inits {
		r := &result{}
		res[in.name] = r
		if st, err := os.Stat(in.path); err == nil {
			r.size = st.Size()
		}
	}
	loadBefore := loadavg()
	fmt.Fprintln(os.Stderr, "start-up (hyperfine)...")
	bare, floor, err := startup(inits, res, self, *runs)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "signal latency, the inits in turn...")
	if err := latencies(inits, res, self, *signals); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "orphan storms, the inits in turn...")
	reaps(inits, res, self, *orphans, *reapRounds)
	fmt.Fprintf(os.Stderr, "idle CPU and peak RSS over %s, all four at once...\n", *idle)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, in := range inits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hwm, cpu, err := idleRun(in, self, *idle)
			mu.Lock()
			defer mu.Unlock()
			r := res[in.name]
			r.hwmKB, r.idleCPUms = hwm, cpu
			if err != nil {
				r.err = append(r.err, "idle: "+err.Error())
			}
		}()
	}
	wg.Wait()
	report(os.Stdout, inits, res, bare, *runs, *signals, *orphans, *reapRounds, *idle)
	fmt.Fprintf(os.Stdout, "\nStart-up references (medians): an empty static Go program %.2f ms; `codex-launch --version` %.2f ms.\n",
		floor["go-noop"], floor["codex-launch-version"])
	fmt.Fprintf(os.Stdout, "\nLoad average before the run: %s; after: %s (2 cores: above 2, other work was competing).\n", loadBefore, loadavg())
	return nil
}

func withEnv(env []string) []string { return append(os.Environ(), env...) }

// nsArgv wraps argv to run as PID 1 of a new PID namespace.
func nsArgv(in initDef, child ...string) []string {
	a := append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, in.pid1...)
	return append(a, child...)
}

// startup runs hyperfine over the bare /bin/true and each init's plain start,
// plus two references that explain codex-launch's share: an empty Go program
// (the runtime's floor) and `codex-launch --version` (the binary's own
// initialisation, no boot).
func startup(inits []initDef, res map[string]*result, self string, runs int) (bare float64, floor map[string]float64, err error) {
	floor = map[string]float64{}
	tmp, err := os.MkdirTemp("", "pid1bench-hf")
	if err != nil {
		return 0, nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "hf.json")
	// One hyperfine run with all commands, so they share the machine's state.
	args := []string{"-N", "--warmup", "30", "--runs", strconv.Itoa(runs), "--export-json", out, "--style", "none",
		"-n", "bare", "/bin/true", "-n", "go-noop", self + " noop", "-n", "codex-launch-version", inits[0].path + " --version"}
	for _, in := range inits {
		args = append(args, "-n", in.name, strings.Join(append(append([]string{}, in.plain...), "/bin/true"), " "))
	}
	cmd := exec.Command("hyperfine", args...)
	// Each init's environment is the same for all: codex-launch reads only its own.
	cmd.Env = withEnv(inits[0].env)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, nil, fmt.Errorf("hyperfine: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return 0, nil, err
	}
	var hf struct {
		Results []struct {
			Command string    `json:"command"`
			Median  float64   `json:"median"`
			Times   []float64 `json:"times"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &hf); err != nil {
		return 0, nil, err
	}
	for _, r := range hf.Results {
		switch r.Command {
		case "bare":
			bare = r.Median * 1000
		case "go-noop", "codex-launch-version":
			floor[r.Command] = r.Median * 1000
		}
	}
	for _, r := range hf.Results {
		if x, ok := res[r.Command]; ok {
			x.startMedian = r.Median * 1000
			x.startOver = x.startMedian - bare
		}
	}
	return bare, floor, nil
}

// sigInit is one init running sigchild, ready to be signalled.
type sigInit struct {
	cmd     *exec.Cmd
	out     io.Reader
	initPid int
	lat     []float64
}

func startSigInit(in initDef, self string) (*sigInit, error) {
	argv := nsArgv(in, self, "sigchild")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = withEnv(in.env)
	cmd.Stderr = os.Stderr
	pr, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sigInit{cmd: cmd, out: pr}
	var b [8]byte
	if _, err := io.ReadFull(pr, b[:]); err != nil {
		s.stop()
		return nil, fmt.Errorf("child never ready: %w", err)
	}
	if s.initPid, err = childOf(cmd.Process.Pid); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *sigInit) stop() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() }

// once sends one SIGUSR1 to the init and waits for the child's timestamp.
func (s *sigInit) once() error {
	var b [8]byte
	t0 := monoNow()
	if err := unix.Kill(s.initPid, unix.SIGUSR1); err != nil {
		return err
	}
	if _, err := io.ReadFull(s.out, b[:]); err != nil {
		return err
	}
	s.lat = append(s.lat, float64(int64(binary.LittleEndian.Uint64(b[:]))-t0)/1000)
	return nil
}

// latencies runs all inits with sigchild at once and signals them in turn,
// n times each, so that the machine's changing load falls on all alike.
func latencies(inits []initDef, res map[string]*result, self string, n int) error {
	var live []*sigInit
	var names []string
	for _, in := range inits {
		s, err := startSigInit(in, self)
		if err != nil {
			res[in.name].err = append(res[in.name].err, "latency: "+err.Error())
			continue
		}
		defer s.stop()
		live = append(live, s)
		names = append(names, in.name)
	}
	for i := 0; i < n; i++ {
		for j, s := range live {
			if err := s.once(); err != nil {
				return fmt.Errorf("%s: signal %d: %w", names[j], i, err)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	for j, s := range live {
		sort.Float64s(s.lat)
		r := res[names[j]]
		r.latMedian, r.latP99 = s.lat[len(s.lat)/2], s.lat[len(s.lat)*99/100]
	}
	return nil
}

// reapOnce runs one orphan storm under the init and returns its time in ms.
func reapOnce(in initDef, self string, n int) (float64, error) {
	argv := nsArgv(in, self, "storm", "-n", strconv.Itoa(n))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = withEnv(in.env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%w: %s", err, out.String())
	}
	f := strings.Fields(out.String())
	if len(f) < 2 || f[len(f)-2] != "reap_ns" {
		return 0, fmt.Errorf("output %q", out.String())
	}
	ns, _ := strconv.ParseFloat(f[len(f)-1], 64)
	return ns / 1e6, nil
}

// reaps runs the storm rounds times per init, the inits in turn within each
// round, and keeps each init's median.
func reaps(inits []initDef, res map[string]*result, self string, n, rounds int) {
	ms := map[string][]float64{}
	for i := 0; i < rounds; i++ {
		for _, in := range inits {
			v, err := reapOnce(in, self, n)
			if err != nil {
				res[in.name].err = append(res[in.name].err, fmt.Sprintf("reap round %d: %v", i, err))
				continue
			}
			ms[in.name] = append(ms[in.name], v)
		}
	}
	for name, v := range ms {
		sort.Float64s(v)
		res[name].reapMedian = v[len(v)/2]
	}
}

// idleRun starts the init with an idle child, lets it settle, and measures
// its CPU time over d and its peak RSS (VmHWM).
func idleRun(in initDef, self string, d time.Duration) (hwmKB int, cpuMS float64, err error) {
	argv := nsArgv(in, self, "idle")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = withEnv(in.env)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	initPid, err := childOf(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second)
	c0, err := cpuTicks(initPid)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(d)
	c1, err := cpuTicks(initPid)
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", initPid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			hwmKB, _ = strconv.Atoi(f[1])
		}
	}
	return hwmKB, float64(c1-c0) * 1000 / float64(clkTck), nil
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

func cpuTicks(pid int) (int64, error) {
	st, err := procstat.Read(pid)
	if err != nil {
		return 0, err
	}
	return int64(st.UTime + st.STime), nil
}

// childOf finds the process unshare forked (the init, PID 1 inside).
func childOf(ppid int) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if st, err := procstat.Read(p); err == nil && st.PPid == ppid {
				return p, nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("no child of %d", ppid)
}

func report(w io.Writer, inits []initDef, res map[string]*result, bare float64, runs, signals, orphans, rounds int, idle time.Duration) {
	tini := res["tini"]
	fmt.Fprintf(w, "| | %s |\n|---|%s\n", names(inits, " | "), strings.Repeat("---|", len(inits)))
	row := func(label string, f func(r *result) string) {
		var cells []string
		for _, in := range inits {
			cells = append(cells, f(res[in.name]))
		}
		fmt.Fprintf(w, "| %s | %s |\n", label, strings.Join(cells, " | "))
	}
	row(fmt.Sprintf("start-up `X -- /bin/true`, median ms (bare /bin/true %.2f ms; %d runs)", bare, runs),
		func(r *result) string { return fmt.Sprintf("%.2f", r.startMedian) })
	row("start-up overhead over bare, ms", func(r *result) string { return fmt.Sprintf("%+.2f", r.startOver) })
	row(fmt.Sprintf("signal latency median, µs (%d × USR1 → child)", signals), func(r *result) string { return fmt.Sprintf("%.1f", r.latMedian) })
	row("signal latency p99, µs", func(r *result) string { return fmt.Sprintf("%.1f", r.latP99) })
	row(fmt.Sprintf("reap %d orphans, median of %d, ms", orphans, rounds), func(r *result) string { return fmt.Sprintf("%.1f", r.reapMedian) })
	row("peak RSS (VmHWM), KiB", func(r *result) string { return strconv.Itoa(r.hwmKB) })
	row(fmt.Sprintf("CPU while idle over %s, ms", idle), func(r *result) string { return fmt.Sprintf("%.0f", r.idleCPUms) })
	row("binary size, KiB", func(r *result) string { return strconv.FormatInt(r.size/1024, 10) })
	fmt.Fprintln(w)
	cl := res["codex-launch"]
	if tini != nil && cl != nil && tini.latMedian > 0 && tini.reapMedian > 0 {
		fmt.Fprintf(w, "Targets against tini: start-up overhead %+.2f ms vs tini (target ≤ +1.5 ms): %s; "+
			"signal latency median %.2f× tini (target ≤ 2×): %s; reaping %.2f× tini (target ≤ 1.5×): %s.\n",
			cl.startOver-tini.startOver, verdict(cl.startOver-tini.startOver <= 1.5),
			cl.latMedian/tini.latMedian, verdict(cl.latMedian <= 2*tini.latMedian),
			cl.reapMedian/tini.reapMedian, verdict(cl.reapMedian <= 1.5*tini.reapMedian))
	}
	for _, in := range inits {
		for _, e := range res[in.name].err {
			fmt.Fprintf(w, "\n%s: %s\n", in.name, e)
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func names(inits []initDef, sep string) string {
	var n []string
	for _, in := range inits {
		n = append(n, in.name)
	}
	return strings.Join(n, sep)
}

// loadavg is the 1, 5 and 15 minute load averages, for judging the numbers.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
