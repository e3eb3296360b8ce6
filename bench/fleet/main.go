// Command fleet benchmarks the PostgreSQL fleet mode: N codex-launch
// processes (the built binary, each with its own CODEX_HOME) share one
// credential through a throw-away PostgreSQL cluster and a loopback mock
// token endpoint. It reports POSTs per generation, the time for every
// workspace to hold each new generation (median, p99, max), and the database
// load while idle (transactions per minute per launcher, from
// pg_stat_database).
//
//	go run ./bench/fleet -launchers 50 -generations 10 -idle 60s
//
// With -scale it runs the launchers in-process instead (a fleet follower and
// an authwatch watchdog each, with its own CODEX_HOME and database
// connection), many of them over many credentials, directly or through
// PgBouncer in transaction mode, and reports POSTs per generation per
// credential, adoption latency, database transactions and CPU while idle and
// during refresh waves, server sessions held and memory per launcher:
//
//	go run ./bench/fleet -scale -mode pooled -launchers 10000 -credentials 1000 -pool 50
//	go run ./bench/fleet -scale -mode direct -launchers 300 -credentials 30
//
// Run as root (as CI does) or as a user who can run initdb.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

func main() {
	n := flag.Int("launchers", 50, "launcher processes")
	gens := flag.Int("generations", 10, "generations to rotate through")
	ttl := flag.Duration("ttl", 8*time.Second, "access-token lifetime (refresh happens at ttl-margin)")
	margin := flag.Duration("margin", 5*time.Second, "safety margin")
	idle := flag.Duration("idle", 60*time.Second, "idle measurement window")
	settle := flag.Duration("settle", 20*time.Second, "wait after starting the idle launchers before measuring")
	scale := flag.Bool("scale", false, "in-process launchers at scale (the flags below)")
	mode := flag.String("mode", "pooled", "-scale: direct (a session per launcher) or pooled (through PgBouncer)")
	creds := flag.Int("credentials", 1000, "-scale: credentials the launchers are spread over")
	pool := flag.Int("pool", 50, "-scale: PgBouncer's default_pool_size (server sessions)")
	waves := flag.Int("waves", 3, "-scale: refresh waves (generations per credential)")
	first := flag.Duration("first", 180*time.Second, "-scale: lifetime of the first access tokens (start-up and the idle window)")
	poll := flag.Duration("poll", 30*time.Second, "-scale: the followers' poll interval")
	fastPoll := flag.Duration("fast-poll", 2*time.Second, "-scale: the pooled followers' fast poll interval")
	cpuProfile := flag.String("cpuprofile", "", "-scale: write a CPU profile of the benchmark process to this file")
	flag.Parse()
	if *scale {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench/fleet:", err)
				os.Exit(2)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		o := scaleOptions{pooled: *mode == "pooled", launchers: 10000, creds: *creds, pool: *pool, waves: *waves,
			ttl: 120 * time.Second, margin: 40 * time.Second, first: *first, poll: *poll, fastPoll: *fastPoll, startConcurrency: 200}
		flag.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "launchers":
				o.launchers = *n
			case "ttl":
				o.ttl = *ttl
			case "margin":
				o.margin = *margin
			}
		})
		if *mode != "pooled" && *mode != "direct" {
			fmt.Fprintln(os.Stderr, "bench/fleet: -mode wants direct or pooled")
			os.Exit(2)
		}
		if err := runScale(o); err != nil {
			pprof.StopCPUProfile()
			fmt.Fprintln(os.Stderr, "bench/fleet:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *gens, *ttl, *margin, *idle, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(1)
	}
}

type workspace struct {
	home string
	cmd  *exec.Cmd
}

func run(n, gens int, ttl, margin, idle, settle time.Duration) error {
	tmp, err := os.MkdirTemp("", "codex-launch-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
	bin, err := testenv.BuildLauncher(tmp)
	if err != nil {
		return err
	}
	pg, err := testenv.StartPostgres()
	if err != nil {
		return err
	}
	defer pg.Close()
	ctx := context.Background()

	fmt.Printf("fleet benchmark: %d launchers, %d generations, access TTL %s, margin %s, idle window %s\n", n, gens, ttl, margin, idle)

	// Phase 1: rotation.
	url, err := pg.CreateDatabase(ctx, "rotation")
	if err != nil {
		return err
	}
	mock := tokenmock.Start(tokenmock.Options{AccessTTL: ttl})
	defer mock.Close()
	seed := mock.AuthJSON(mock.Issue("acct"), time.Now().Add(-time.Minute))
	ws, err := startAll(bin, tmp, "rot", n, url, mock.URL, seed, margin)
	if err != nil {
		return err
	}
	var perGen []time.Duration
	var lags []time.Duration // per workspace and generation
	seen := 0
	deadline := time.Now().Add(time.Duration(gens+3) * (ttl - margin + 5*time.Second))
	for seen < gens && time.Now().Before(deadline) {
		latest, _ := mock.Latest("acct")
		if latest.Generation <= seen {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		seen = latest.Generation
		start := time.Now()
		pending := map[int]bool{}
		for i := range ws {
			pending[i] = true
		}
		for len(pending) > 0 && time.Since(start) < 30*time.Second {
			for i := range pending {
				if refreshToken(ws[i].home) == latest.RefreshToken {
					lags = append(lags, time.Since(start))
					delete(pending, i)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		if len(pending) > 0 {
			stopAll(ws)
			return fmt.Errorf("generation %d: %d workspaces never adopted it", seen, len(pending))
		}
		perGen = append(perGen, time.Since(start))
	}
	stopAll(ws)
	if seen < gens {
		return fmt.Errorf("only %d generations within the time allowed", seen)
	}
	postsPerGen := map[int]int{}
	reused := 0
	for _, q := range mock.Requests() {
		switch q.Outcome {
		case "refreshed":
			postsPerGen[q.Generation]++
		default:
			reused++
		}
	}
	minP, maxP := 1<<30, 0
	for g := 0; g < seen; g++ {
		minP, maxP = min(minP, postsPerGen[g]), max(maxP, postsPerGen[g])
	}
	fmt.Printf("POSTs: %d for %d generations (per generation: min %d, max %d); other answers (reused etc.): %d\n",
		mock.Posts(), seen, minP, maxP, reused)
	fmt.Printf("all %d workspaces hold a new generation after: median %s, p99 %s, max %s (over %d generations)\n",
		n, pct(perGen, 50), pct(perGen, 99), pct(perGen, 100), len(perGen))
	fmt.Printf("one workspace adopts a new generation after: median %s, p99 %s (over %d adoptions)\n",
		pct(lags, 50), pct(lags, 99), len(lags))

	// Phase 2: idle. Long-lived tokens: nothing to refresh, only the
	// fallback reads and whatever else the launchers do.
	url2, err := pg.CreateDatabase(ctx, "idle")
	if err != nil {
		return err
	}
	mock2 := tokenmock.Start(tokenmock.Options{AccessTTL: 24 * time.Hour})
	defer mock2.Close()
	seed2 := mock2.AuthJSON(mock2.Issue("acct"), time.Now())
	ws2, err := startAll(bin, tmp, "idle", n, url2, mock2.URL, seed2, time.Hour)
	if err != nil {
		return err
	}
	defer stopAll(ws2)
	// Let every launcher connect, migrate and sync, and the statistics of
	// those start-up transactions reach pg_stat_database (backends flush
	// them when idle, at most once a second), before the window opens.
	time.Sleep(settle)
	before, err := xacts(ctx, pg.URL("postgres"))
	if err != nil {
		return err
	}
	time.Sleep(idle)
	after, err := xacts(ctx, pg.URL("postgres"))
	if err != nil {
		return err
	}
	// The two measurement queries themselves run in the postgres database,
	// not in "idle", so they are not counted.
	perMin := float64(after-before) / idle.Minutes()
	fmt.Printf("idle: %d transactions in %s on the store's database = %.1f per minute = %.2f per launcher per minute\n",
		after-before, idle, perMin, perMin/float64(n))
	return nil
}

func startAll(bin, tmp, tag string, n int, url, tokenURL string, seed []byte, margin time.Duration) ([]*workspace, error) {
	var ws []*workspace
	for i := 0; i < n; i++ {
		dir := filepath.Join(tmp, fmt.Sprintf("%s%d", tag, i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		w := &workspace{home: filepath.Join(dir, "codex")}
		w.cmd = exec.Command(bin, "--", "sleep", "3600")
		w.cmd.Env = []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=" + dir,
			"CODEX_HOME=" + w.home,
			"CODEX_AUTH_JSON=" + string(seed),
			"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + tokenURL,
			"NO_PROXY=*",
			"CODEX_LAUNCH_CREDENTIAL_STORE=" + url + "&application_name=" + filepath.Base(dir),
			"CODEX_AUTH_REFRESH_INTERVAL_SECONDS=3600",
			fmt.Sprintf("CODEX_AUTH_SAFETY_MARGIN_SECONDS=%d", int(margin.Seconds())),
			"CODEX_LAUNCH_LOG_LEVEL=warn",
		}
		w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := w.cmd.Start(); err != nil {
			stopAll(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

func stopAll(ws []*workspace) {
	for _, w := range ws {
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, w := range ws {
		done := make(chan struct{})
		go func() { w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

func refreshToken(home string) string {
	data, err := os.ReadFile(filepath.Join(home, "auth.json"))
	if err != nil {
		return ""
	}
	var a struct {
		Tokens struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"tokens"`
	}
	json.Unmarshal(data, &a)
	return a.Tokens.RefreshToken
}

// xacts is committed plus rolled-back transactions of database "idle"
// (every statement outside a transaction block is one).
func xacts(ctx context.Context, url string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	// Statistics are flushed by backends at most once a second; a snapshot
	// clear makes this read see the current counters.
	conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`)
	var n int64
	err = conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'idle'`).Scan(&n)
	return n, err
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "n/a"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = max(1, min(i, len(s)))
	return s[i-1].Round(time.Millisecond).String()
}
