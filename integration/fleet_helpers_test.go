package integration

// Helpers for the fleet tests (fleet_*_test.go): a throw-away PostgreSQL
// cluster for the whole TestFleet run, and codex-launch processes, each with
// its own CODEX_HOME, sharing one credential through it.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

const fleetAccount = "acct-fleet"

// fleetRig is one scenario: a fresh database, a mock endpoint, workspaces.
type fleetRig struct {
	t   *testing.T
	pg  *testenv.Postgres
	url string // the database's own URL (the test's queries)
	// store is the launchers' CODEX_LAUNCH_CREDENTIAL_STORE: url, or the
	// same database through the pooler (via).
	store string
	mock  *tokenmock.Server
	seed  []byte
	env   map[string]string // extra launcher environment for every workspace
	// child is the command each launcher runs (default: sleep 600); it
	// runs in the workspace's directory.
	child []string
	ws    []*fleetWS
}

type fleetWS struct {
	name  string
	dir   string
	home  string
	cmd   *exec.Cmd
	out   testenv.Buffer
	done  chan struct{}
	ended atomic.Bool
}

// start starts the launcher and a goroutine that closes done once it has
// exited. A process that outlives the launcher while holding its output pipe
// (one that left the child's group, which the launcher does not chase) would
// otherwise keep cmd.Wait, and the test, waiting for as long as it lives:
// with sleep 600, past the test binary's timeout, with no word of why.
// WaitDelay ends that wait ten seconds after the launcher's exit.
func (w *fleetWS) start() error {
	w.cmd.WaitDelay = 10 * time.Second
	if err := w.cmd.Start(); err != nil {
		return err
	}
	go func() { w.cmd.Wait(); w.ended.Store(true); close(w.done) }()
	return nil
}

func newFleetRig(t *testing.T, dbs *testenv.Databases, ttl time.Duration) *fleetRig {
	t.Helper()
	mock := tokenmock.Start(tokenmock.Options{AccessTTL: ttl})
	t.Cleanup(mock.Close)
	cred := mock.Issue(fleetAccount)
	url := dbs.Fresh(t)
	return &fleetRig{t: t, pg: dbs.Cluster(t), url: url, store: url, mock: mock, seed: mock.AuthJSON(cred, time.Now().Add(-time.Minute)),
		env: map[string]string{}}
}

// via makes the launchers reach the database the route's way: through the
// package's PgBouncer in transaction mode, with the pooled store mode.
func (r *fleetRig) via(dbs *testenv.Databases, route testenv.Route) *fleetRig {
	if route.Pooled {
		r.store = dbs.Pooler(r.t).Route(r.url)
		r.env["CODEX_LAUNCH_CREDENTIAL_STORE_MODE"] = "pooled"
		r.env["CODEX_LAUNCH_FLEET_FAST_POLL_INTERVAL"] = "1s"
	}
	return r
}

// stopDatabase stops the cluster under the running fleet. The scenario
// starts it again; should it fail first, its end does, for the next one.
func (r *fleetRig) stopDatabase() {
	r.t.Helper()
	if err := r.pg.Stop(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = r.pg.Start() }) // "already running" once the scenario did
}

// start launches n workspaces: codex-launch -- sleep 600, each seeded from
// CODEX_AUTH_JSON with the generation-0 credential, as a fleet of
// containers provisioned with the same secret would be.
func (r *fleetRig) start(n int) {
	r.t.Helper()
	bin := builtLauncher(r.t)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ws%d", len(r.ws))
		dir := filepath.Join(r.t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			r.t.Fatal(err)
		}
		w := &fleetWS{name: name, dir: dir, home: filepath.Join(dir, "codex"), done: make(chan struct{})}
		env := map[string]string{
			"PATH":                                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME":                                dir,
			"CODEX_HOME":                          w.home,
			"CODEX_AUTH_JSON":                     string(r.seed),
			"CODEX_REFRESH_TOKEN_URL_OVERRIDE":    r.mock.URL,
			"NO_PROXY":                            "*",
			"CODEX_LAUNCH_CREDENTIAL_STORE":       r.store + "&application_name=" + name,
			"CODEX_AUTH_REFRESH_INTERVAL_SECONDS": "1",
			"CODEX_AUTH_SAFETY_MARGIN_SECONDS":    "3",
			"CODEX_LAUNCH_FLEET_POLL_INTERVAL":    "5s",
			// Retry soon after the store returns (a transient failure).
			"CODEX_LAUNCH_MIN_BACKOFF": "500ms",
			"CODEX_LAUNCH_MAX_BACKOFF": "2s",
			"CODEX_LAUNCH_LOG_LEVEL":   "debug",
		}
		for k, v := range r.env {
			env[k] = v
		}
		var envList []string
		for k, v := range env {
			envList = append(envList, k+"="+v)
		}
		child := r.child
		if len(child) == 0 {
			child = []string{"sleep", "600"}
		}
		w.cmd = exec.Command(bin, append([]string{"--"}, child...)...)
		w.cmd.Env = envList
		w.cmd.Dir = dir
		w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
		w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := w.start(); err != nil {
			r.t.Fatal(err)
		}
		r.ws = append(r.ws, w)
	}
	r.t.Cleanup(r.stopAll)
}

// stopAll ends every workspace (TERM, then KILL) and checks their logs for
// tokens and the database password.
func (r *fleetRig) stopAll() {
	for _, w := range r.ws {
		if !w.ended.Load() {
			syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, w := range r.ws {
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			<-w.done
		}
		out := w.out.Bytes()
		if leaks := r.mock.Leaks(out); len(leaks) > 0 {
			r.t.Errorf("%s logged a token: %v", w.name, leaks)
		}
		if strings.Contains(string(out), r.pg.Password) {
			r.t.Errorf("%s logged the database password", w.name)
		}
		if r.t.Failed() {
			r.t.Logf("--- %s output (last 4 KiB):\n%s", w.name, fleetTail(out, 4096))
		}
	}
	r.ws = nil
}

func fleetTail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// refreshToken is the refresh token the workspace's auth.json holds ("" when
// it holds none).
func (w *fleetWS) refreshToken() string {
	data, _ := os.ReadFile(filepath.Join(w.home, "auth.json"))
	c, _ := fileTokens(data)
	return c.RefreshToken
}

// storeState reads the follower's status file (state, generation).
func (w *fleetWS) storeState() (string, int64, string) {
	data, err := os.ReadFile(filepath.Join(w.home, "codex_launch_store_status.json"))
	if err != nil {
		return "", 0, ""
	}
	var s struct {
		State      string `json:"store_state"`
		Generation int64  `json:"store_generation"`
		Error      string `json:"store_error"`
	}
	json.Unmarshal(data, &s)
	return s.State, s.Generation, s.Error
}

// waitConverged waits until every running workspace holds the mock's newest
// credential and returns how long that took.
func (r *fleetRig) waitConverged(within time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	for {
		latest, _ := r.mock.Latest(fleetAccount)
		var behind []string
		for _, w := range r.ws {
			if !w.ended.Load() && w.refreshToken() != latest.RefreshToken {
				behind = append(behind, w.name)
			}
		}
		if len(behind) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			r.t.Fatalf("%d workspaces do not hold generation %d after %s: %v", len(behind), latest.Generation, within, behind)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkOneRedemptionPerGeneration: every generation's refresh token was
// redeemed exactly once and nobody was told refresh_token_reused. Requests
// the mock never answered (abandoned by a killed client before redemption)
// are returned separately.
func (r *fleetRig) checkOneRedemptionPerGeneration() (generations, abandoned int) {
	r.t.Helper()
	latest, _ := r.mock.Latest(fleetAccount)
	redeemed := map[int]int{}
	for _, q := range r.mock.Requests() {
		switch q.Outcome {
		case "refreshed":
			redeemed[q.Generation]++
		case "abandoned":
			abandoned++
		default:
			r.t.Errorf("the endpoint answered %q to a refresh of generation %d", q.Outcome, q.Generation)
		}
	}
	for g := 0; g < latest.Generation; g++ {
		if redeemed[g] != 1 {
			r.t.Errorf("generation %d redeemed %d times, want 1", g, redeemed[g])
		}
	}
	return latest.Generation, abandoned
}

func (r *fleetRig) query(sql string, dst ...any) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dst...); err != nil {
		r.t.Fatalf("%s: %v", sql, err)
	}
}

func (r *fleetRig) waitPosts(n int, within time.Duration) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := r.mock.WaitPosts(ctx, n); err != nil {
		r.t.Fatalf("waiting for %d POSTs (have %d): %v", n, r.mock.Posts(), err)
	}
}
