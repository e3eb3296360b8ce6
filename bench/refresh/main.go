// Command refresh-bench measures `codex-launch refresh --once` against the
// seed watchdog's `--once` on the same fixtures and the same loopback token
// endpoint (tokenmock, in this process), for the skip path (a fresh
// credential: nothing to do) and the refresh path (a credential that is due:
// one POST and a commit). It reports wall time and CPU time (user + system of
// the process and every descendant it waited for, from wait4's rusage) per
// run, and the seed/codex-launch ratios, all measured in one run with the
// programs interleaved so that machine noise hits both alike.
//
//	go run ./bench/refresh                 # 40 runs of each program on each path
//	go run ./bench/refresh -n 100 -seed path/to/codex_auth_refresh.sh
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
	"syscall"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

func main() {
	n := flag.Int("n", 40, "timed runs of each program on each path")
	seed := flag.String("seed", testenv.SeedScript(), "the seed watchdog script (default: $CODEX_LAUNCH_SEED_SCRIPT, else the reference copy beside the repository)")
	launcher := flag.String("launcher", "", "a built codex-launch (default: build it)")
	python := flag.String("python", testenv.SeedPython(), "the python3 for the seed (default: the first ELF python3 in /usr/bin, /usr/local/bin, /bin)")
	flag.Parse()
	if err := run(*n, *seed, *launcher, *python); err != nil {
		fmt.Fprintln(os.Stderr, "refresh-bench:", err)
		os.Exit(1)
	}
}

type program struct {
	name string
	argv []string
	path string // PATH for it
}

type sample struct{ wall, cpu time.Duration }

func run(n int, seed, launcher, python string) error {
	if _, err := os.Stat(seed); err != nil {
		return fmt.Errorf("seed script: %w", err)
	}
	work, err := os.MkdirTemp("", "refresh-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if launcher == "" {
		if launcher, err = testenv.BuildLauncher(work); err != nil {
			return err
		}
	}
	if python == "" {
		return errors.New("no python3 interpreter found for the seed (use -python)")
	}
	// The seed finds python3 and curl on PATH itself (CODEX_PYTHON unset),
	// as in the image; a version manager's shim would cost it extra.
	seedPATH := filepath.Dir(python) + ":/usr/bin:/bin"
	progs := []program{
		{name: "codex-launch", argv: []string{launcher, "refresh", "--once"}, path: "/usr/bin:/bin"},
		{name: "seed", argv: []string{"/bin/bash", seed, "--once"}, path: seedPATH},
	}

	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	defer srv.Close()
	// A mock whose tokens have expired when minted: every run finds the
	// credential due, so each run refreshes the token the previous one
	// rotated.
	due := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	defer due.Close()

	type pathCase struct {
		name     string
		srv      *tokenmock.Server
		wantExit int
		margin   string
		expiry   time.Duration // of the first access token
		fixture  func(c tokenmock.Credential) []byte
	}
	paths := []pathCase{
		{name: "skip (fresh credential)", srv: srv, wantExit: 1, margin: "600", expiry: 5 * time.Hour, fixture: func(c tokenmock.Credential) []byte {
			return srv.AuthJSON(c, time.Now())
		}},
		{name: "refresh (one POST + commit)", srv: due, wantExit: 0, margin: "600", expiry: -time.Minute, fixture: func(c tokenmock.Credential) []byte {
			return due.AuthJSON(c, time.Now().Add(-time.Hour))
		}},
	}

	fmt.Printf("refresh-bench: %d timed runs per program and path (after 3 warm-up runs), interleaved\n", n)
	fmt.Printf("codex-launch: %s\nseed: %s (python %s)\n\n", launcher, seed, python)
	fmt.Println("| path | program | wall mean | wall median | CPU mean | CPU median |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	type ratio struct{ path, wall, cpu string }
	var ratios []ratio
	for pi, pc := range paths {
		homes := make([]string, len(progs))
		for i, p := range progs {
			dir := filepath.Join(work, fmt.Sprintf("home-%d-%d", pi, i))
			if err := os.Mkdir(dir, 0o700); err != nil {
				return err
			}
			c := pc.srv.IssueWithExpiry("bench-"+p.name, time.Now().Add(pc.expiry))
			if err := os.WriteFile(filepath.Join(dir, "auth.json"), pc.fixture(c), 0o600); err != nil {
				return err
			}
			homes[i] = dir
		}
		samples := make([][]sample, len(progs))
		for iter := 0; iter < n+3; iter++ {
			for i, p := range progs {
				env := []string{
					"PATH=" + p.path, "HOME=" + work, "LANG=C.UTF-8", "NO_PROXY=*",
					"CODEX_HOME=" + homes[i],
					"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + pc.srv.URL,
					"CODEX_AUTH_SAFETY_MARGIN_SECONDS=" + pc.margin,
				}
				s, code, out, err := measure(p.argv, env)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", p.name, pc.name, err)
				}
				if code != pc.wantExit {
					return fmt.Errorf("%s on %s exited %d, want %d:\n%s", p.name, pc.name, code, pc.wantExit, out)
				}
				if iter >= 3 {
					samples[i] = append(samples[i], s)
				}
			}
		}
		var means []sample
		for i, p := range progs {
			m, med := stats(samples[i])
			means = append(means, m)
			fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", pc.name, p.name, ms(m.wall), ms(med.wall), ms(m.cpu), ms(med.cpu))
		}
		ratios = append(ratios, ratio{pc.name,
			fmt.Sprintf("%.1f×", float64(means[1].wall)/float64(means[0].wall)),
			fmt.Sprintf("%.1f×", float64(means[1].cpu)/float64(means[0].cpu))})
	}
	fmt.Println()
	fmt.Println("| path | seed ÷ codex-launch, wall | seed ÷ codex-launch, CPU |")
	fmt.Println("|---|---:|---:|")
	for _, r := range ratios {
		fmt.Printf("| %s | %s | %s |\n", r.path, r.wall, r.cpu)
	}
	fmt.Printf("\nPOSTs to the mock: %d\n", srv.Posts()+due.Posts())
	return nil
}

// measure runs argv to completion and returns its wall time and the CPU time
// of it and its waited-for descendants (wait4's rusage covers both).
func measure(argv, env []string) (sample, int, string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return sample{}, 0, "", err
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, 0, "", errors.New("no rusage for the child")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return sample{wall: wall, cpu: cpu}, cmd.ProcessState.ExitCode(), out.String(), nil
}

func stats(s []sample) (mean, median sample) {
	walls := make([]time.Duration, len(s))
	cpus := make([]time.Duration, len(s))
	for i, x := range s {
		mean.wall += x.wall
		mean.cpu += x.cpu
		walls[i], cpus[i] = x.wall, x.cpu
	}
	mean.wall /= time.Duration(len(s))
	mean.cpu /= time.Duration(len(s))
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
	return mean, sample{wall: walls[len(walls)/2], cpu: cpus[len(cpus)/2]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
