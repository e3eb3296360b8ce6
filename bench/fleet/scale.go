package main

// The -scale benchmark: thousands of launchers in this one process (a fleet
// follower and an authwatch watchdog each, with its own CODEX_HOME and its own
// database connection), spread over many credentials whose access tokens are
// short-lived, so that refresh waves happen during the run.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/internal/procstat"
	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

type scaleOptions struct {
	pooled             bool
	launchers, creds   int
	pool               int
	waves              int
	ttl, margin, first time.Duration
	poll, fastPoll     time.Duration
	startConcurrency   int
}

// scaleLauncher is one simulated workspace.
type scaleLauncher struct {
	cred  int
	fleet *fleet.Fleet
	// seen[g] is when this launcher's follower first held store generation g.
	mu   sync.Mutex
	seen map[int64]time.Time
}

// sample is one second of the run, as the database and the processes saw it.
type sample struct {
	at                     time.Time
	xacts                  int64   // transactions of the store's database so far
	pgCPU, bouncerCPU, cpu float64 // CPU seconds so far: PostgreSQL, PgBouncer, this process
	serverConns            int     // sessions of the store's database
	busyConns              int     // of them, in a statement or a transaction (not idle)
}

func runScale(o scaleOptions) error {
	if err := testenv.RaiseFileLimit(); err != nil {
		return err
	}
	pg, err := testenv.StartPostgres()
	if err != nil {
		return err
	}
	defer pg.Close()
	ctx := context.Background()
	direct, err := pg.CreateDatabase(ctx, "scale")
	if err != nil {
		return err
	}
	url, route := direct, "direct (one session per launcher)"
	var bouncer *testenv.PgBouncer
	if o.pooled {
		if bouncer, err = testenv.StartPgBouncer(pg, o.pool, o.launchers+100); err != nil {
			return err
		}
		defer bouncer.Close()
		url, route = bouncer.Route(direct), fmt.Sprintf("PgBouncer, transaction mode, default_pool_size %d", o.pool)
	}
	tmp, err := os.MkdirTemp("", "codex-launch-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	policy := authwatch.Policy{Interval: time.Hour, SafetyMargin: o.margin, StaleAfter: 7 * 24 * time.Hour}
	fmt.Printf("fleet scale benchmark: %d launchers over %d credentials, %s; access tokens live %s (the first %s), "+
		"refreshed %s before expiry; %d refresh waves; poll %s, fast poll %s\n",
		o.launchers, o.creds, route, o.ttl, o.first, o.margin, o.waves, o.poll, o.fastPoll)

	mock := tokenmock.Start(tokenmock.Options{AccessTTL: o.ttl})
	defer mock.Close()
	ep, err := authwatch.NewEndpoint(mock.URL, tokenmock.ClientID, 30*time.Second)
	if err != nil {
		return err
	}
	seeds := make([][]byte, o.creds)
	firstExp := time.Now().Add(o.first)
	for c := range seeds {
		seeds[c] = mock.AuthJSON(mock.IssueWithExpiry(account(c), firstExp), time.Now().Add(-time.Minute))
	}
	warn := &lineCounter{}
	log := hclog.New(&hclog.LoggerOptions{Output: warn, Level: hclog.Warn})

	stopMeter := startMeter(pg, bouncer)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ls := make([]*scaleLauncher, o.launchers)
	started := time.Now()
	sem := make(chan struct{}, o.startConcurrency)
	for i := range ls {
		l, err := newScaleLauncher(tmp, i, i%o.creds, seeds[i%o.creds], url, o, policy, log)
		if err != nil {
			return err
		}
		ls[i] = l
		w, err := authwatch.New(authwatch.Config{Home: authwatch.Home{Dir: filepath.Join(tmp, strconv.Itoa(i))}, Store: l.fleet,
			StoreName: "postgres", Endpoint: ep, Policy: policy, Owner: true, Logger: log})
		if err != nil {
			return err
		}
		sem <- struct{}{}
		wg.Add(3)
		go func() { defer wg.Done(); l.fleet.Run(runCtx) }()
		go func() {
			defer wg.Done()
			select {
			case <-l.fleet.Ready():
			case <-runCtx.Done():
			}
			<-sem
			w.Run(runCtx)
		}()
		go func() { defer wg.Done(); l.track(runCtx) }()
	}
	for _, l := range ls {
		<-l.fleet.Ready()
	}
	ready := time.Now()
	notOK := 0
	for _, l := range ls {
		if l.fleet.State().State != "ok" {
			notOK++
		}
	}
	fmt.Printf("start: all %d launchers connected and synced in %s (%d not ok)\n", o.launchers, ready.Sub(started).Round(time.Second), notOK)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perLauncher := (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / float64(o.launchers)

	// The waves: every credential refreshed o.waves times.
	deadline := firstExp.Add(time.Duration(o.waves) * o.ttl)
	for time.Now().Before(deadline) {
		done := true
		for c := 0; c < o.creds && done; c++ {
			latest, _ := mock.Latest(account(c))
			done = latest.Generation >= o.waves
		}
		if done {
			break
		}
		time.Sleep(time.Second)
	}
	time.Sleep(10 * time.Second) // the last adoptions
	samples := stopMeter()
	cancel()
	wg.Wait()

	return report(o, mock, ls, samples, ready, perLauncher, warn)
}

func account(c int) string { return fmt.Sprintf("acct%04d", c) }

func newScaleLauncher(tmp string, i, cred int, seed []byte, url string, o scaleOptions, policy authwatch.Policy, log hclog.Logger) (*scaleLauncher, error) {
	dir := filepath.Join(tmp, strconv.Itoa(i))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), seed, 0o600); err != nil {
		return nil, err
	}
	// One application_name for all, as launchers have: a name per client
	// would cost a SET on every transaction the pooler hands to another
	// client's server session.
	f, err := fleet.New(fleet.Config{URL: url, Name: account(cred),
		Home: authwatch.Home{Dir: dir}, Pooled: o.pooled, PollInterval: o.poll, FastPollInterval: o.fastPoll,
		Policy: policy, LockTimeout: 30 * time.Second, By: "ws" + strconv.Itoa(i), Logger: log})
	if err != nil {
		return nil, err
	}
	return &scaleLauncher{cred: cred, fleet: f, seen: map[int64]time.Time{}}, nil
}

// track records when the follower first holds each store generation.
func (l *scaleLauncher) track(ctx context.Context) {
	for {
		st := l.fleet.State()
		if st.Generation > 0 {
			l.mu.Lock()
			if _, ok := l.seen[st.Generation]; !ok {
				l.seen[st.Generation] = time.Now()
			}
			l.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-l.fleet.Changed():
		}
	}
}

func report(o scaleOptions, mock *tokenmock.Server, ls []*scaleLauncher, samples []sample, ready time.Time, perLauncher float64, warn *lineCounter) error {
	// POSTs per credential and generation, and when each generation was
	// minted (the request that redeemed its predecessor's token).
	posts := map[string]map[int]int{}
	minted := map[string]map[int64]time.Time{} // account -> store generation -> time
	others := 0
	var waveStarts []time.Time
	for _, q := range mock.Requests() {
		if q.Outcome != "refreshed" {
			others++
			continue
		}
		if posts[q.Account] == nil {
			posts[q.Account], minted[q.Account] = map[int]int{}, map[int64]time.Time{}
		}
		posts[q.Account][q.Generation]++
		// Mock generation g's token minted mock generation g+1, which is
		// store generation g+2 (store generation 1 is the bootstrap).
		minted[q.Account][int64(q.Generation)+2] = q.Time
		waveStarts = append(waveStarts, q.Time)
	}
	minP, maxP, gens := 1<<30, 0, 0
	for c := 0; c < o.creds; c++ {
		latest, _ := mock.Latest(account(c))
		for g := 0; g < latest.Generation; g++ {
			n := posts[account(c)][g]
			minP, maxP = min(minP, n), max(maxP, n)
			gens++
		}
	}
	fmt.Printf("POSTs: %d for %d generations over %d credentials; per generation per credential: min %d, max %d; other answers: %d\n",
		mock.Posts(), gens, o.creds, minP, maxP, others)

	var lags []time.Duration
	missed := 0
	first := map[string]time.Duration{} // per credential and generation: its first holder's lag
	for _, l := range ls {
		l.mu.Lock()
		for g, at := range minted[account(l.cred)] {
			seen, ok := l.seen[g]
			if !ok {
				missed++ // went straight to a later generation, or never saw it
				continue
			}
			lag := seen.Sub(at)
			lags = append(lags, lag)
			key := account(l.cred) + "/" + strconv.FormatInt(g, 10)
			if f, ok := first[key]; !ok || lag < f {
				first[key] = lag
			}
		}
		l.mu.Unlock()
	}
	fmt.Printf("adoption after a new generation is minted: p50 %s, p99 %s, max %s (%d adoptions; %d generations a launcher never held)\n",
		pct(lags, 50), pct(lags, 99), pct(lags, 100), len(lags), missed)
	var firsts []time.Duration
	for _, f := range first {
		firsts = append(firsts, f)
	}
	// The first holder is the refresher (its follower stores the generation
	// as it commits): this is the POST's answer to the commit, through the
	// pooler; the rest of a launcher's lag is its wait to look.
	fmt.Printf("  of which the first holder of each generation (its refresher's commit): p50 %s, p99 %s, max %s\n",
		pct(firsts, 50), pct(firsts, 99), pct(firsts, 100))
	fmt.Printf("launcher-side memory: %.0f KiB per launcher (follower, watchdog and connection; heap and stacks after GC)\n", perLauncher/1024)

	// Seconds within a wave: from 6 s before a credential's first POST of
	// the wave (the fast polls start 5 s ahead) to 10 s after its last.
	inWave := func(t time.Time) bool {
		for _, w := range waveStarts {
			if t.After(w.Add(-6*time.Second)) && t.Before(w.Add(10*time.Second)) {
				return true
			}
		}
		return false
	}
	var idle, wave windowSum
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if !a.at.After(ready.Add(10 * time.Second)) {
			continue // start-up and its settling
		}
		if inWave(a.at) || inWave(b.at) {
			wave.add(a, b)
		} else {
			idle.add(a, b)
		}
	}
	idle.print("idle", o.launchers)
	wave.print("refresh waves", o.launchers)
	if n := warn.n.Load(); n > 0 {
		fmt.Printf("warnings logged: %d; first: %s\n", n, warn.first())
	}
	if maxP != 1 || minP != 1 || others != 0 {
		return errors.New("not exactly one POST per generation")
	}
	return nil
}

type windowSum struct {
	secs                   float64
	xacts                  int64
	pgCPU, bouncerCPU, cpu float64
	maxConns, maxBusy      int
	busySum, samples       int
}

func (w *windowSum) add(a, b sample) {
	w.secs += b.at.Sub(a.at).Seconds()
	w.xacts += b.xacts - a.xacts
	w.pgCPU += b.pgCPU - a.pgCPU
	w.bouncerCPU += b.bouncerCPU - a.bouncerCPU
	w.cpu += b.cpu - a.cpu
	w.maxConns = max(w.maxConns, b.serverConns)
	w.maxBusy = max(w.maxBusy, b.busyConns)
	w.busySum += b.busyConns
	w.samples++
}

func (w *windowSum) print(name string, n int) {
	if w.secs == 0 {
		fmt.Printf("%s: no such window in this run\n", name)
		return
	}
	fmt.Printf("%s (%.0f s): %.0f transactions/s on the store's database (%.3f per launcher per minute); CPU cores busy: "+
		"PostgreSQL %.3f, PgBouncer %.3f, launchers (this process) %.3f; server sessions held: at most %d, "+
		"of them busy (not idle, sampled each second): mean %.1f, at most %d\n",
		name, w.secs, float64(w.xacts)/w.secs, float64(w.xacts)/w.secs*60/float64(n),
		w.pgCPU/w.secs, w.bouncerCPU/w.secs, w.cpu/w.secs, w.maxConns, float64(w.busySum)/float64(w.samples), w.maxBusy)
}

// startMeter samples the database and the processes every second until the
// returned function is called; it returns the samples.
func startMeter(pg *testenv.Postgres, bouncer *testenv.PgBouncer) func() []sample {
	stop, done := make(chan struct{}), make(chan []sample)
	go func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/fleet: meter:", err)
			done <- nil
			return
		}
		defer conn.Close(ctx)
		pgPid := pidFile(filepath.Join(pg.Dir, "data", "postmaster.pid"))
		bouncerPid := 0
		if bouncer != nil {
			bouncerPid = pidFile(filepath.Join(bouncer.Dir, "pgbouncer.pid"))
		}
		var out []sample
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			s := sample{at: time.Now(), pgCPU: treeCPU(pgPid), bouncerCPU: treeCPU(bouncerPid), cpu: selfCPU()}
			conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`)
			conn.QueryRow(ctx, `SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'scale'),
				(SELECT count(*) FROM pg_stat_activity WHERE datname = 'scale'),
				(SELECT count(*) FROM pg_stat_activity WHERE datname = 'scale' AND state <> 'idle')`).Scan(&s.xacts, &s.serverConns, &s.busyConns)
			out = append(out, s)
			select {
			case <-stop:
				done <- out
				return
			case <-t.C:
			}
		}
	}()
	return func() []sample { close(stop); return <-done }
}

func pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// treeCPU is the CPU time (user + system, seconds) of process root, of its
// live children (PostgreSQL's backends: each is its own session leader, so a
// process group does not find them) and of the children it has reaped (a
// backend whose client left takes its CPU time with it otherwise).
func treeCPU(root int) float64 {
	if root == 0 {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	var ticks uint64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := procstat.Read(pid)
		switch {
		case err != nil:
		case pid == root:
			ticks += s.UTime + s.STime + s.CUTime + s.CSTime
		case s.PPid == root:
			ticks += s.UTime + s.STime
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// lineCounter counts log lines and keeps the first.
type lineCounter struct {
	n         atomic.Int64
	mu        sync.Mutex
	firstLine string
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if c.n.Add(1) == 1 {
		c.mu.Lock()
		c.firstLine = strings.TrimSpace(string(p))
		c.mu.Unlock()
	}
	return len(p), nil
}

func (c *lineCounter) first() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstLine
}
