// Command boot-bench measures the boot: the time from starting the container
// entrypoint to the first instruction of its child, for codex-launch and for
// the seed image's start.sh steps (bench/boot/seed-start.sh: write auth.json
// from CODEX_AUTH_JSON, config.toml, the seed watchdog's --once, exec). Two
// cases: a fresh credential (nothing to refresh) and one that needs a refresh
// from the loopback token endpoint (tokenmock, in this process). Every run
// gets a new, empty CODEX_HOME and a credential the mock has just issued;
// the programs are interleaved so that machine noise hits both alike.
//
// The child writes the wall-clock time to the file named by BOOT_BENCH_MARK
// as its first act. By default it is bench/boot/cchild, a static C program
// (built with the C compiler, cc): its first act follows its exec by a few
// microseconds, so the time measured ends where the issue says, at the child's
// first instruction. -child go uses bench/boot/child, the same in Go, whose
// runtime adds about a millisecond to both columns before its main runs.
//
//	go run ./bench/boot                         # 30 runs of each program per case
//	go run ./bench/boot -n 100 -seed path/to/codex_auth_refresh.sh
//	go run ./bench/boot -child go               # a Go child instead of the C one
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

func main() {
	n := flag.Int("n", 30, "timed runs of each program in each case")
	seed := flag.String("seed", testenv.SeedScript(), "the seed watchdog script (default: $CODEX_LAUNCH_SEED_SCRIPT, else the reference copy beside the repository)")
	launcher := flag.String("launcher", "", "a built codex-launch (default: build it)")
	python := flag.String("python", testenv.SeedPython(), "the python3 for the seed (default: the first ELF python3 in /usr/bin, /usr/local/bin, /bin)")
	childKind := flag.String("child", "c", "the child: c (static C, built with cc) or go")
	flag.Parse()
	if err := run(*n, *seed, *launcher, *python, *childKind); err != nil {
		fmt.Fprintln(os.Stderr, "boot-bench:", err)
		os.Exit(1)
	}
}

type program struct {
	name string
	argv []string // the entrypoint; the child's argv is appended
	path string
}

func run(n int, seed, launcher, python, childKind string) error {
	if _, err := os.Stat(seed); err != nil {
		return fmt.Errorf("seed script: %w", err)
	}
	work, err := os.MkdirTemp("", "boot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if launcher == "" {
		if launcher, err = testenv.BuildLauncher(work); err != nil {
			return err
		}
	}
	child, err := buildChild(work, childKind)
	if err != nil {
		return err
	}
	if python == "" {
		return errors.New("no python3 interpreter found for the seed (use -python)")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		return errors.New("the seed needs curl on PATH")
	}
	startScript := filepath.Join(testenv.ModuleRoot(), "bench", "boot", "seed-start.sh")
	progs := []program{
		{name: "codex-launch", argv: []string{launcher, "--"}, path: "/usr/bin:/bin"},
		{name: "start.sh steps (seed)", argv: []string{"/bin/bash", startScript}, path: filepath.Dir(python) + ":/usr/bin:/bin"},
	}

	srv := tokenmock.Start(tokenmock.Options{AccessTTL: 24 * time.Hour})
	defer srv.Close()

	type bootCase struct {
		name  string
		posts int // POSTs per run
		cred  func() []byte
	}
	cases := []bootCase{
		{"fresh credential", 0, func() []byte {
			c := srv.IssueWithExpiry("bench", time.Now().Add(240*time.Hour))
			return srv.AuthJSON(c, time.Now())
		}},
		// Expires within the default 4h margin: the prime refreshes it.
		{"credential needing a refresh", 1, func() []byte {
			c := srv.IssueWithExpiry("bench", time.Now().Add(time.Hour))
			return srv.AuthJSON(c, time.Now().Add(-23*time.Hour))
		}},
	}

	fmt.Printf("boot-bench: start → the child's first instruction; %d timed runs per program and case (after 3 warm-up runs), interleaved\n", n)
	fmt.Printf("codex-launch: %s\nseed: %s via %s (python %s)\nchild: %s (-child %s)\n", launcher, seed, startScript, python, child, childKind)
	fmt.Printf("load average at start: %s\n\n", loadavg())
	fmt.Println("| case | program | mean | median | min | max | CPU mean | CPU median |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	var ratios []string
	runID := 0
	for _, bc := range cases {
		samples := make([][]time.Duration, len(progs))
		cpus := make([][]time.Duration, len(progs))
		for iter := 0; iter < n+3; iter++ {
			for i, p := range progs {
				runID++
				home := filepath.Join(work, fmt.Sprintf("home-%d", runID))
				mark := filepath.Join(work, fmt.Sprintf("mark-%d", runID))
				env := []string{
					"PATH=" + p.path, "HOME=" + work, "LANG=C.UTF-8", "NO_PROXY=*",
					"CODEX_HOME=" + home,
					"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + srv.URL,
					"CODEX_AUTH_JSON=" + string(bc.cred()),
					"SEED_SCRIPT=" + seed,
					"BOOT_BENCH_MARK=" + mark,
				}
				before := srv.Posts()
				d, cpu, out, err := measure(append(append([]string{}, p.argv...), child), env, mark)
				if err != nil {
					return fmt.Errorf("%s, %s: %w\n%s", p.name, bc.name, err, out)
				}
				if got := srv.Posts() - before; got != bc.posts {
					return fmt.Errorf("%s, %s: %d POSTs, want %d\n%s", p.name, bc.name, got, bc.posts, out)
				}
				if iter >= 3 {
					samples[i] = append(samples[i], d)
					cpus[i] = append(cpus[i], cpu)
				}
				os.RemoveAll(home)
			}
		}
		var means, medians, cpuMeans []time.Duration
		for i, p := range progs {
			mean, med, lo, hi := stats(samples[i])
			cpuMean, cpuMed, _, _ := stats(cpus[i])
			means, medians = append(means, mean), append(medians, med)
			cpuMeans = append(cpuMeans, cpuMean)
			fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", bc.name, p.name, ms(mean), ms(med), ms(lo), ms(hi), ms(cpuMean), ms(cpuMed))
		}
		ratios = append(ratios, fmt.Sprintf("| %s | %.0f× | %.0f× | %.0f× |", bc.name,
			float64(means[1])/float64(means[0]), float64(medians[1])/float64(medians[0]),
			float64(cpuMeans[1])/float64(cpuMeans[0])))
	}
	fmt.Println()
	fmt.Println("| case | seed ÷ codex-launch, mean | seed ÷ codex-launch, median | CPU, mean |")
	fmt.Println("|---|---:|---:|---:|")
	fmt.Println(strings.Join(ratios, "\n"))
	fmt.Printf("\nload average at the end: %s\n", loadavg())
	return nil
}

// buildChild builds the benchmark's child into dir: the static C program, or
// the Go one.
func buildChild(dir, kind string) (string, error) {
	switch kind {
	case "go":
		return testenv.Build(dir, "./bench/boot/child", "boot-child")
	case "c":
		out := filepath.Join(dir, "boot-cchild")
		src := filepath.Join(testenv.ModuleRoot(), "bench", "boot", "cchild", "child.c")
		cmd := exec.Command("cc", "-static", "-O2", "-o", out, src)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the C child (needs cc and a static C library; or use -child go): %w: %s", err, b)
		}
		return out, nil
	}
	return "", fmt.Errorf("-child %q: want c or go", kind)
}

// measure starts argv and returns the time until the child wrote mark, and
// the CPU time (user + system) of the whole run: the entrypoint and every
// process it waited for, the child included (wait4's rusage). CPU time hardly
// depends on how busy the machine is, so it keeps the comparison honest
// where wall time is dominated by waiting for a core.
func measure(argv, env []string, mark string) (time.Duration, time.Duration, string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, out.String(), err
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, out.String(), errors.New("no rusage")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	data, err := os.ReadFile(mark)
	if err != nil {
		return 0, 0, out.String(), fmt.Errorf("the child never ran: %w", err)
	}
	ns, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return 0, 0, out.String(), err
	}
	return time.Unix(0, ns).Sub(start), cpu, out.String(), nil
}

func stats(s []time.Duration) (mean, median, lo, hi time.Duration) {
	sorted := append([]time.Duration(nil), s...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, d := range s {
		mean += d
	}
	return mean / time.Duration(len(s)), sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// loadavg is the machine's 1/5/15-minute load, to judge the numbers by.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
