package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/fleet/pgstore"
	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// TestFleet runs the fleet scenarios against one throw-away PostgreSQL
// cluster (each scenario in a database of its own), with launchers as
// separate processes of the built binary.
func TestFleet(t *testing.T) {
	builtLauncher(t)
	dbs := testenv.StartDatabases("fleet")
	defer dbs.Close()
	dbs.Cluster(t) // skips (under CI: fails) with the reason when it could not start

	for _, route := range testenv.Routes {
		t.Run(route.Name, func(t *testing.T) {
			t.Run("OnePostPerGeneration", func(t *testing.T) { fleetOnePostPerGeneration(t, dbs, route) })
			t.Run("RefresherKilledHoldingTheLock", func(t *testing.T) { fleetRefresherKilled(t, dbs, route) })
		})
	}
	t.Run("DatabaseAway", func(t *testing.T) { fleetDatabaseAway(t, dbs) })
	t.Run("LocalRefreshPublished", func(t *testing.T) { fleetLocalRefresh(t, dbs) })
	t.Run("ConcurrentFirstStart", func(t *testing.T) { fleetFirstStart(t, dbs) })
	t.Run("FallbackRefresh", func(t *testing.T) { fleetFallback(t, dbs) })
	t.Run("SecretsStayOutOfTheChild", func(t *testing.T) { fleetChildEnvironment(t, dbs) })
	t.Run("SealedAtRest", func(t *testing.T) { fleetSealed(t, dbs) })
	t.Run("RefreshOnce", func(t *testing.T) { fleetRefreshOnce(t, dbs) })
}

// 20 launchers, access tokens living 5 s (refreshed 3 s before expiry), five
// generations: one redemption each, everyone holds each within seconds.
func fleetOnePostPerGeneration(t *testing.T, dbs *testenv.Databases, route testenv.Route) {
	r := newFleetRig(t, dbs, 5*time.Second).via(dbs, route)
	r.start(20)
	var worst time.Duration
	for g := 1; g <= 5; g++ {
		r.waitPosts(g, 20*time.Second)
		if d := r.waitConverged(4 * time.Second); d > worst {
			worst = d
		}
	}
	for _, w := range r.ws {
		if w.ended.Load() {
			t.Errorf("%s exited: %s", w.name, fleetTail(w.out.Bytes(), 2000))
		}
	}
	r.stopAll()
	gens, abandoned := r.checkOneRedemptionPerGeneration()
	if gens < 5 || abandoned != 0 {
		t.Fatalf("%d generations, %d abandoned requests", gens, abandoned)
	}
	if posts := r.mock.Posts(); posts != gens {
		t.Fatalf("%d POSTs for %d generations", posts, gens)
	}
	var stored int64
	r.query(`SELECT generation FROM codex_launch_credential WHERE name = 'default'`, &stored)
	if stored != int64(gens)+1 {
		t.Fatalf("stored generation %d, want %d (1 is the bootstrap)", stored, gens+1)
	}
	t.Logf("%d generations, slowest convergence after a POST was seen: %s", gens, worst)
}

// The launcher holding the row lock is SIGKILLed while its POST is held at
// the endpoint (not yet redeemed): its session dies (a pooler drops the
// server session its client left mid-transaction), another launcher takes
// the lock, re-reads, and redeems the token, once.
func fleetRefresherKilled(t *testing.T, dbs *testenv.Databases, route testenv.Route) {
	r := newFleetRig(t, dbs, 5*time.Second).via(dbs, route)
	gate := r.mock.Hold(1)
	defer gate.Release()
	r.start(8)
	select {
	case <-gate.Arrived():
	case <-time.After(20 * time.Second):
		t.Fatal("no refresh arrived")
	}
	// The holder sits "idle in transaction" while its POST is held; a
	// waiter is idle in its transaction only for an instant between two
	// statements, so the holder is the one idle for a while.
	var holder string
	var victim *fleetWS
	deadline := time.Now().Add(5 * time.Second)
	for victim == nil {
		r.query(`SELECT coalesce(string_agg(application_name, ','), '') FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'idle in transaction'
			AND state_change < now() - interval '300 milliseconds'`, &holder)
		for _, w := range r.ws {
			if w.name == holder {
				victim = w
			}
		}
		if victim == nil && time.Now().After(deadline) {
			t.Fatalf("cannot tell which launcher holds the lock (idle in transaction: %q)", holder)
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(victim.cmd.Process.Pid, syscall.SIGKILL)
	<-victim.done
	r.waitPosts(2, 20*time.Second) // the held one plus the takeover
	r.waitConverged(5 * time.Second)
	r.waitPosts(3, 20*time.Second) // and the fleet goes on
	r.waitConverged(5 * time.Second)
	r.stopAll()
	gens, abandoned := r.checkOneRedemptionPerGeneration()
	if gens < 2 || abandoned != 1 {
		t.Fatalf("%d generations, %d abandoned requests; want ≥2 and exactly 1 (the killed refresher's)", gens, abandoned)
	}
}

// The database stops under running launchers: nobody refreshes alone, the
// children keep running, the store status says so; after it returns the
// fleet refreshes once and everyone converges.
func fleetDatabaseAway(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, 5*time.Second)
	r.start(6)
	r.waitPosts(1, 20*time.Second)
	r.waitConverged(4 * time.Second)
	r.stopDatabase()
	before := r.mock.Posts()
	time.Sleep(5 * time.Second) // past the next refresh point (2 s) and the expiry (5 s)
	if n := r.mock.Posts() - before; n != 0 {
		t.Fatalf("%d POSTs while the database was away", n)
	}
	for _, w := range r.ws {
		if w.ended.Load() {
			t.Fatalf("%s exited while the database was away", w.name)
		}
		if st, _, msg := w.storeState(); st != "unavailable" || msg == "" {
			t.Errorf("%s store status %q %q, want unavailable with a reason", w.name, st, msg)
		}
	}
	// health says so (whatever its verdict), without the password.
	health := exec.Command(builtLauncher(t), "health")
	health.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + r.ws[0].dir, "CODEX_HOME=" + r.ws[0].home,
		"CODEX_LAUNCH_CREDENTIAL_STORE=" + r.url}
	out, _ := health.CombinedOutput()
	if !strings.Contains(string(out), "credential store unavailable") || strings.Contains(string(out), r.pg.Password) {
		t.Errorf("health while the database is away: %s", out)
	}
	if err := r.pg.Start(); err != nil {
		t.Fatal(err)
	}
	r.waitPosts(before+1, 40*time.Second)
	r.waitConverged(5 * time.Second)
	for _, w := range r.ws {
		if st, _, _ := w.storeState(); st != "ok" {
			t.Errorf("%s store status %q after the database returned", w.name, st)
		}
	}
	r.stopAll()
	r.checkOneRedemptionPerGeneration()
}

// The CLI of one workspace refreshes on its own (as after a 401): the
// result is published and adopted everywhere, and nobody redeems the spent
// token again.
func fleetLocalRefresh(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, time.Minute)
	r.start(6)
	r.waitConverged(10 * time.Second)
	for _, w := range r.ws {
		waitFor(t, 10*time.Second, func() bool { st, g, _ := w.storeState(); return st == "ok" && g == 1 })
	}
	old := r.ws[2].refreshToken()
	body := fmt.Sprintf(`{"client_id":%q,"grant_type":"refresh_token","refresh_token":%q}`, tokenmock.ClientID, old)
	resp, err := http.Post(r.mock.URL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("CLI-style refresh: HTTP %d", resp.StatusCode)
	}
	latest, _ := r.mock.Latest(fleetAccount)
	tmp := filepath.Join(r.ws[2].home, "auth.json.cli-tmp")
	os.WriteFile(tmp, r.mock.AuthJSON(latest, time.Now()), 0o600)
	if err := os.Rename(tmp, filepath.Join(r.ws[2].home, "auth.json")); err != nil {
		t.Fatal(err)
	}
	d := r.waitConverged(5 * time.Second)
	t.Logf("local refresh adopted everywhere after %s", d)
	time.Sleep(time.Second)
	if n := r.mock.PostsFor(old); n != 1 {
		t.Fatalf("the spent refresh token was posted %d times", n)
	}
	var stored int64
	r.query(`SELECT generation FROM codex_launch_credential WHERE name = 'default'`, &stored)
	if stored != 2 {
		t.Fatalf("stored generation %d, want 2", stored)
	}
	r.stopAll()
	r.checkOneRedemptionPerGeneration()
}

// 20 launchers start at once on an empty database: one schema, one
// generation 1, no POST.
func fleetFirstStart(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, time.Hour)
	r.start(20)
	for _, w := range r.ws {
		waitFor(t, 20*time.Second, func() bool { st, g, _ := w.storeState(); return st == "ok" && g == 1 })
	}
	var versions, rows int
	var gen int64
	r.query(`SELECT (SELECT count(*) FROM codex_launch_schema), (SELECT count(*) FROM codex_launch_credential),
		(SELECT max(generation) FROM codex_launch_credential)`, &versions, &rows, &gen)
	if versions != pgstore.SchemaVersion || rows != 1 || gen != 1 {
		t.Fatalf("schema versions %d, rows %d, generation %d; want %d, 1, 1", versions, rows, gen, pgstore.SchemaVersion)
	}
	if n := r.mock.Posts(); n != 0 {
		t.Fatalf("%d POSTs at first start", n)
	}
	r.stopAll()
}

func waitFor(t *testing.T, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With sealing keys the stored credential is AES-GCM ciphertext under the
// first key's id, and the fleet works as before.
func fleetSealed(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, 5*time.Second)
	key := make([]byte, 32)
	rand.Read(key)
	r.env["CODEX_LAUNCH_CREDENTIAL_KEYS"] = "k1:" + base64.StdEncoding.EncodeToString(key)
	r.start(3)
	r.waitPosts(1, 20*time.Second)
	r.waitConverged(4 * time.Second)
	latest, _ := r.mock.Latest(fleetAccount)
	var keyID string
	var payload []byte
	r.query(`SELECT key_id, payload FROM codex_launch_credential WHERE name = 'default'`, &keyID, &payload)
	if keyID != "k1" || bytes.Contains(payload, []byte(latest.RefreshToken)) || bytes.Contains(payload, []byte("refresh_token")) {
		t.Fatalf("stored credential not sealed (key id %q)", keyID)
	}
	for _, w := range r.ws {
		if strings.Contains(w.out.String(), base64.StdEncoding.EncodeToString(key)) {
			t.Errorf("%s logged the sealing key", w.name)
		}
	}
	r.stopAll()
	r.checkOneRedemptionPerGeneration()
}

// `refresh --once` on a shared store: one pass through the database, the
// seed's exit codes (0 refreshed, then 1 nothing to do).
func fleetRefreshOnce(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, 30*time.Second)
	dir := t.TempDir()
	home := filepath.Join(dir, "codex")
	os.MkdirAll(home, 0o700)
	// A 30 s token with 5 s left: inside half its lifetime, so due.
	due := r.mock.IssueWithExpiry(fleetAccount, time.Now().Add(5*time.Second))
	os.WriteFile(filepath.Join(home, "auth.json"), r.mock.AuthJSON(due, time.Now().Add(-time.Minute)), 0o600)
	run := func(margin string) (int, string) {
		cmd := exec.Command(builtLauncher(t), "refresh", "--once")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "CODEX_HOME=" + home, "NO_PROXY=*",
			"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + r.mock.URL, "CODEX_LAUNCH_CREDENTIAL_STORE=" + r.url,
			"CODEX_AUTH_SAFETY_MARGIN_SECONDS=" + margin}
		out, _ := cmd.CombinedOutput()
		if strings.Contains(string(out), r.pg.Password) || len(r.mock.Leaks(out)) > 0 {
			t.Errorf("refresh --once output holds a secret:\n%s", out)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := run("60"); code != 0 {
		t.Fatalf("first refresh --once: exit %d, want 0 (refreshed)\n%s", code, out)
	}
	var gen int64
	r.query(`SELECT generation FROM codex_launch_credential WHERE name = 'default'`, &gen)
	latest, _ := r.mock.Latest(fleetAccount)
	w := &fleetWS{home: home}
	if gen != 2 || w.refreshToken() != latest.RefreshToken {
		t.Fatalf("stored generation %d, local holds the newest: %v", gen, w.refreshToken() == latest.RefreshToken)
	}
	if code, out := run("0"); code != 1 {
		t.Fatalf("second refresh --once: exit %d, want 1 (nothing to do)\n%s", code, out)
	}
	if r.mock.Posts() != 1 {
		t.Fatalf("%d POSTs, want 1", r.mock.Posts())
	}
}

// An https (here loopback http) store follows a central refresher: the
// launcher adopts the platform's credential, keeps following it, and never
// POSTs to the token endpoint even when the credential is due.
func TestFleetPlatformFollower(t *testing.T) {
	mock := tokenmock.Start(tokenmock.Options{AccessTTL: 3 * time.Second})
	defer mock.Close()
	var current atomic.Value
	var authorized atomic.Int64
	serve := func(c tokenmock.Credential) {
		b, _ := json.Marshal(map[string]string{"CODEX_AUTH_JSON": string(mock.AuthJSON(c, time.Now()))})
		current.Store(b)
	}
	serve(mock.Issue(fleetAccount))
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/workspaces/ws-7/secrets/values" || r.Header.Get("Authorization") != "Bearer tok-123" ||
			r.Header.Get("X-Molecule-Org-Id") != "org-1" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		authorized.Add(1)
		w.Write(current.Load().([]byte))
	}))
	defer platform.Close()

	dir := t.TempDir()
	home := filepath.Join(dir, "codex")
	tokenFile := filepath.Join(dir, "auth_token")
	os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600)
	w := &fleetWS{name: "follower", dir: dir, home: home, done: make(chan struct{})}
	w.cmd = exec.Command(builtLauncher(t), "--", "sleep", "600")
	w.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "CODEX_HOME=" + home, "NO_PROXY=*",
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + mock.URL, "CODEX_LAUNCH_CREDENTIAL_STORE=" + platform.URL,
		"CODEX_LAUNCH_CREDENTIAL_TOKEN_FILE=" + tokenFile, "CODEX_AUTH_SYNC_INTERVAL_SECONDS=1",
		"WORKSPACE_ID=ws-7", "MOLECULE_ORG_ID=org-1",
		"CODEX_AUTH_REFRESH_INTERVAL_SECONDS=1", "CODEX_AUTH_SAFETY_MARGIN_SECONDS=60"}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.done
		if t.Failed() {
			t.Logf("launcher output:\n%s", fleetTail(w.out.Bytes(), 4000))
		}
	}()
	first, _ := mock.Latest(fleetAccount)
	waitFor(t, 10*time.Second, func() bool { return w.refreshToken() == first.RefreshToken })
	// The central refresher rotates; the follower adopts the new copy.
	next := mock.IssueWithExpiry(fleetAccount, time.Now().Add(time.Hour))
	serve(next)
	waitFor(t, 10*time.Second, func() bool { return w.refreshToken() == next.RefreshToken })
	if n := mock.Posts(); n != 0 {
		t.Fatalf("a follower-only launcher POSTed %d times to the token endpoint", n)
	}
	if authorized.Load() < 2 {
		t.Fatalf("%d authorized platform requests", authorized.Load())
	}
	if leaks := mock.Leaks(w.out.Bytes()); len(leaks) > 0 || strings.Contains(w.out.String(), "tok-123") {
		t.Fatalf("the launcher logged a secret: %v", leaks)
	}
}

// With --fleet-fallback-refresh a launcher refreshes alone while the
// database is away, and publishes the result when it returns.
func fleetFallback(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, 5*time.Second)
	r.env["CODEX_LAUNCH_FLEET_FALLBACK_REFRESH"] = "1"
	r.start(1)
	w := r.ws[0]
	waitFor(t, 10*time.Second, func() bool { st, g, _ := w.storeState(); return st == "ok" && g == 1 })
	r.stopDatabase()
	if n := r.mock.Posts(); n != 0 {
		t.Fatalf("%d POSTs before the database went away; the scenario needs the refresh to fall in the outage", n)
	}
	r.waitPosts(1, 20*time.Second)
	r.waitConverged(4 * time.Second)
	if st, _, _ := w.storeState(); st != "fallback" {
		t.Errorf("store status %q, want fallback", st)
	}
	if err := r.pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { st, g, _ := w.storeState(); return st == "ok" && g >= 2 })
	r.stopAll()
	r.checkOneRedemptionPerGeneration()
}
