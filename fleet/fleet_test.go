package fleet

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
	"github.com/molecule-ai/codex-launch/fleet/seal"
	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// dbs is the package's throw-away PostgreSQL cluster (TestMain).
var dbs *testenv.Databases

func TestMain(m *testing.M) {
	dbs = testenv.StartDatabases("f")
	code := m.Run()
	dbs.Close()
	os.Exit(code)
}

// launcher is one workspace in-process: a Fleet and a watchdog on top of it.
type launcher struct {
	home  authwatch.Home
	fleet *Fleet
	logs  *testenv.Buffer
}

type rig struct {
	t        *testing.T
	route    testenv.Route
	url      string // the launchers' URL (through the pooler when route.Pooled)
	direct   string // the database's own URL, for the test's checks
	mock     *tokenmock.Server
	account  string // the shared login's account ("" names none)
	cred     tokenmock.Credential
	policy   authwatch.Policy
	ls       []*launcher
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	fallback bool
	poll     time.Duration // PollInterval; 2 s when zero
	watchers int           // start(true) runs a watchdog on the first watchers launchers; 0: on all
}

func newRig(t *testing.T, route testenv.Route, ttl time.Duration, policy authwatch.Policy) *rig {
	t.Helper()
	r := &rig{t: t, route: route, policy: policy}
	r.url, r.direct = dbs.FreshVia(t, route)
	r.mock = tokenmock.Start(tokenmock.Options{AccessTTL: ttl})
	t.Cleanup(r.mock.Close)
	r.useAccount("acct-fleet")
	return r
}

// useAccount makes the shared login one of account ("": one whose files
// name no account); before add.
func (r *rig) useAccount(account string) {
	r.account = account
	r.cred = r.mock.Issue(account)
}

// add makes n workspaces, each seeded with the generation-0 credential (as
// boot does from CODEX_AUTH_JSON).
func (r *rig) add(n int) {
	seed := r.mock.AuthJSON(r.cred, time.Now().Add(-time.Minute))
	for i := 0; i < n; i++ {
		dir := filepath.Join(r.t.TempDir(), "codex")
		if err := os.Mkdir(dir, 0o700); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "auth.json"), seed, 0o600); err != nil {
			r.t.Fatal(err)
		}
		buf := &testenv.Buffer{}
		log := hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug})
		home := authwatch.Home{Dir: dir}
		f, err := New(Config{URL: r.url, Name: "default", Home: home, Logger: log, By: fmt.Sprintf("ws%d", len(r.ls)),
			PollInterval: cmp.Or(r.poll, 2*time.Second), LocalInterval: 200 * time.Millisecond,
			Pooled: r.route.Pooled, FastPollInterval: 300 * time.Millisecond, Policy: r.policy,
			// A pooler queues a query while its server is away (PgBouncer's
			// query_wait_timeout): CallTimeout is what notices the outage.
			CallTimeout:  2 * time.Second,
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond, Fallback: r.fallback})
		if err != nil {
			r.t.Fatal(err)
		}
		r.ls = append(r.ls, &launcher{home: home, fleet: f, logs: buf})
	}
}

// start runs every follower and, when watch, a watchdog loop beside it.
func (r *rig) start(watch bool) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	ep, err := authwatch.NewEndpoint(r.mock.URL, tokenmock.ClientID, 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	for i, l := range r.ls {
		l := l
		r.wg.Add(1)
		go func() { defer r.wg.Done(); l.fleet.Run(ctx) }()
		if !watch || (r.watchers > 0 && i >= r.watchers) {
			continue
		}
		w, err := authwatch.New(authwatch.Config{Home: l.home, Store: l.fleet, StoreName: "postgres", Endpoint: ep,
			Policy: r.policy, Owner: true, Logger: hclog.NewNullLogger(), Jitter: func(time.Duration) time.Duration { return 0 },
			MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second, PollInterval: 100 * time.Millisecond})
		if err != nil {
			r.t.Fatal(err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			<-l.fleet.Ready()
			w.Run(ctx)
		}()
	}
	r.t.Cleanup(r.stop)
}

func (r *rig) stop() {
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
		r.cancel = nil
	}
	for i, l := range r.ls {
		if leaks := r.mock.Leaks(l.logs.Bytes()); len(leaks) > 0 {
			r.t.Errorf("workspace %d logged a token: %v", i, leaks)
		}
		if strings.Contains(l.logs.String(), dbs.Cluster(r.t).Password) {
			r.t.Errorf("workspace %d logged the database password", i)
		}
		if r.t.Failed() && testing.Verbose() {
			r.t.Logf("workspace %d log:\n%s", i, l.logs.String())
		}
	}
}

// localRT is the refresh token in a workspace's auth.json.
func localRT(l *launcher) string {
	f, _, err := l.home.Read()
	if err != nil {
		return ""
	}
	return f.Tokens().RefreshToken
}

// waitAll waits until every workspace holds the mock's newest credential.
func (r *rig) waitAll(within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		latest, _ := r.mock.Latest(r.account)
		behind := 0
		for _, l := range r.ls {
			if localRT(l) != latest.RefreshToken {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d workspaces do not hold generation %d after %s", behind, len(r.ls), latest.Generation, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) checkOnePostPerGeneration() int {
	r.t.Helper()
	latest, _ := r.mock.Latest(r.account)
	for g := 0; g < latest.Generation; g++ {
		if n := r.mock.PostsForGeneration(g); n != 1 {
			r.t.Errorf("generation %d's refresh token was posted %d times, want 1", g, n)
		}
	}
	for _, q := range r.mock.Requests() {
		if q.Outcome != "refreshed" {
			r.t.Errorf("the endpoint answered %q (generation %d)", q.Outcome, q.Generation)
		}
	}
	return latest.Generation
}

func (r *rig) storedGeneration() int64 {
	conn, err := pgx.Connect(context.Background(), r.direct)
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var g int64
	if err := conn.QueryRow(context.Background(), `SELECT generation FROM codex_launch_credential WHERE name = 'default'`).Scan(&g); err != nil {
		r.t.Fatal(err)
	}
	return g
}

// rotate waits for each of gens generations to be refreshed and then held by
// every workspace within 3 s.
func (r *rig) rotate(gens int) {
	r.t.Helper()
	for g := 1; g <= gens; g++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := r.mock.WaitPosts(ctx, g)
		cancel()
		if err != nil {
			r.t.Fatalf("generation %d never came: %v", g, err)
		}
		r.waitAll(3 * time.Second)
	}
}

// shortPolicy refreshes 2 s before a 4 s access token expires.
var shortPolicy = authwatch.Policy{Interval: time.Second, SafetyMargin: 2 * time.Second, StaleAfter: time.Hour}

func TestOnePostPerGenerationAndEveryoneAdopts(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		r := newRig(t, route, 4*time.Second, shortPolicy)
		r.add(8)
		r.start(true)
		r.rotate(5)
		r.stop()
		if gen := r.checkOnePostPerGeneration(); gen < 5 {
			t.Fatalf("only %d generations", gen)
		}
		if sg, mg := r.storedGeneration(), r.mock.Posts(); sg != int64(mg)+1 {
			t.Fatalf("stored generation %d, posts %d: want posts+1 (generation 1 is the bootstrap)", sg, mg)
		}
	})
}

func TestConcurrentFirstStartMakesOneGenerationOne(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		r := newRig(t, route, time.Hour, authwatch.DefaultPolicy())
		r.add(20)
		r.start(false)
		for _, l := range r.ls {
			select {
			case <-l.fleet.Ready():
			case <-time.After(20 * time.Second):
				t.Fatal("a follower never got ready")
			}
		}
		if g := r.storedGeneration(); g != 1 {
			t.Fatalf("stored generation %d, want 1", g)
		}
		conn, _ := pgx.Connect(context.Background(), r.direct)
		defer conn.Close(context.Background())
		var versions, rows int
		conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM codex_launch_schema), (SELECT count(*) FROM codex_launch_credential)`).Scan(&versions, &rows)
		if versions != pgstore.SchemaVersion || rows != 1 {
			t.Fatalf("schema versions %d, credential rows %d; want %d and 1", versions, rows, pgstore.SchemaVersion)
		}
		for i, l := range r.ls {
			if st := l.fleet.State(); st.State != "ok" || st.Generation != 1 {
				t.Errorf("workspace %d state %+v", i, st)
			}
		}
		if r.mock.Posts() != 0 {
			t.Fatalf("%d POSTs at start", r.mock.Posts())
		}
	})
}

func TestLocalRefreshIsPublishedAndNobodySpendsTheOldToken(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		localRefreshIsPublished(t, route, "acct-fleet")
	})
}

// TestLocalRefreshWithoutAccountIsPublished: a login whose files name no
// account is still one login: its local refresh is published, not replaced
// by the stored generation whose refresh token it spent.
func TestLocalRefreshWithoutAccountIsPublished(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		localRefreshIsPublished(t, route, "")
	})
}

func localRefreshIsPublished(t *testing.T, route testenv.Route, account string) {
	r := newRig(t, route, 30*time.Second, shortPolicy)
	r.useAccount(account)
	r.add(6)
	r.start(true)
	for _, l := range r.ls {
		deadline := time.Now().Add(10 * time.Second)
		for st := l.fleet.State(); st.State != "ok" || st.Generation != 1; st = l.fleet.State() {
			if time.Now().After(deadline) {
				t.Fatalf("follower not synced: %+v", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The CLI of workspace 3 refreshes by itself (after a 401): it redeems
	// the current token and writes the result.
	old := localRT(r.ls[3])
	body := fmt.Sprintf(`{"client_id":%q,"grant_type":"refresh_token","refresh_token":%q}`, tokenmock.ClientID, old)
	resp, err := http.Post(r.mock.URL, "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CLI-style refresh: %v %v", err, resp)
	}
	resp.Body.Close()
	latest, _ := r.mock.Latest(r.account)
	if err := os.WriteFile(filepath.Join(r.ls[3].home.Dir, "auth.json"), r.mock.AuthJSON(latest, time.Now()), 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitAll(3 * time.Second)
	if r.mock.PostsFor(old) != 1 {
		t.Fatalf("the old refresh token was posted %d times", r.mock.PostsFor(old))
	}
	if g := r.storedGeneration(); g != 2 {
		t.Fatalf("stored generation %d, want 2 (the published local refresh)", g)
	}
	r.stop()
	r.checkOnePostPerGeneration()
}

func TestDatabaseAwayNoRefreshThenConverge(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) { awayThenConverge(t, route, dbs.Cluster(t)) })
}

// A restarted pooler is an outage like a restarted database: its clients'
// connections end with it.
func TestPoolerAwayNoRefreshThenConverge(t *testing.T) {
	awayThenConverge(t, testenv.Route{Name: "pooled", Pooled: true}, dbs.Pooler(t))
}

// awayThenConverge stops away (the database or the pooler) under running
// launchers past the refresh point: nobody refreshes, each reports the store
// unavailable, and after the restart one refresh brings everyone in step.
func awayThenConverge(t *testing.T, route testenv.Route, away interface {
	Stop() error
	Start() error
}) {
	r := newRig(t, route, 4*time.Second, shortPolicy)
	r.add(5)
	r.start(true)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := r.mock.WaitPosts(ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.waitAll(3 * time.Second)
	if err := away.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			away.Start()
		}
	}()
	before := r.mock.Posts()
	// Past the refresh point and the expiry: nobody refreshes alone.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := r.mock.Posts(); n != before {
		t.Fatalf("%d POSTs while the database was away", n-before)
	}
	for i, l := range r.ls {
		if st := l.fleet.State(); st.State != "unavailable" || st.Error == "" {
			t.Errorf("workspace %d state %+v, want unavailable with an error", i, st)
		}
		if strings.Contains(l.fleet.State().Error, dbs.Cluster(t).Password) {
			t.Errorf("state error holds the password")
		}
		if fst, err := ReadState(l.home.Dir); err != nil || fst.State != "unavailable" || fst.Error == "" {
			t.Errorf("workspace %d store status file %+v %v", i, fst, err)
		}
	}
	if err := away.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	ctx2, cancel2 := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel2()
	if err := r.mock.WaitPosts(ctx2, before+1); err != nil {
		t.Fatalf("no refresh after the database came back: %v", err)
	}
	r.waitAll(4 * time.Second)
	r.stop()
	r.checkOnePostPerGeneration()
}

func TestFallbackRefreshesAloneWhenAsked(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		r := newRig(t, route, 4*time.Second, shortPolicy)
		r.fallback = true
		r.add(1)
		r.start(true)
		<-r.ls[0].fleet.Ready()
		if err := dbs.Cluster(t).Stop(); err != nil {
			t.Fatal(err)
		}
		defer dbs.Cluster(t).Start()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := r.mock.WaitPosts(ctx, 1); err != nil {
			t.Fatalf("fallback never refreshed: %v", err)
		}
		r.waitAll(3 * time.Second)
		if st := r.ls[0].fleet.State(); st.State != "fallback" {
			t.Fatalf("state %+v, want fallback", st)
		}
		if err := dbs.Cluster(t).Start(); err != nil {
			t.Fatal(err)
		}
		// Back: the locally refreshed credential is newer and gets published.
		deadline := time.Now().Add(10 * time.Second)
		for r.storedGeneration() < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the fallback refresh was not published after the database returned")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func TestRejectedGenerationIsPostedOnceThenANewLoginTakesOver(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		r := newRig(t, route, 4*time.Second, shortPolicy)
		r.add(6)
		dead := r.cred.RefreshToken
		r.mock.Script(tokenmock.Error(400, "refresh_token_invalidated"))
		r.start(true)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := r.mock.WaitPosts(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// Well past the point where every launcher found the credential due.
		time.Sleep(4 * time.Second)
		if n := r.mock.PostsFor(dead); n != 1 {
			t.Fatalf("the rejected refresh token was posted %d times, want 1", n)
		}
		// An operator logs in again in one workspace: the new login replaces
		// the dead generation everywhere and the fleet refreshes it as usual.
		fresh := r.mock.IssueWithExpiry("acct-fleet", time.Now().Add(4*time.Second))
		if err := os.WriteFile(filepath.Join(r.ls[4].home.Dir, "auth.json"), r.mock.AuthJSON(fresh, time.Now()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.mock.WaitPosts(ctx, 2); err != nil {
			t.Fatalf("the new login was never refreshed: %v", err)
		}
		r.waitAll(4 * time.Second)
		r.stop()
		if n := r.mock.PostsFor(fresh.RefreshToken); n != 1 {
			t.Fatalf("the new login's refresh token was posted %d times", n)
		}
		if n := r.mock.PostsFor(dead); n != 1 {
			t.Fatalf("the rejected refresh token was posted %d times in all", n)
		}
	})
}

func TestKeyRotationResealsAndAMissingKeyIsAClearError(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		r := newRig(t, route, time.Hour, authwatch.DefaultPolicy())
		key := func() string {
			b := make([]byte, 32)
			rand.Read(b)
			return base64.StdEncoding.EncodeToString(b)
		}
		k1, k2 := key(), key()
		run := func(keys string) (*Fleet, *testenv.Buffer) {
			t.Helper()
			ring, err := seal.ParseKeys([]byte(keys))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "codex")
			os.Mkdir(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "auth.json"), r.mock.AuthJSON(r.cred, time.Now()), 0o600)
			logs := &testenv.Buffer{}
			log := hclog.New(&hclog.LoggerOptions{Output: logs})
			f, err := New(Config{URL: r.url, Home: authwatch.Home{Dir: dir}, Keys: ring, LocalInterval: 50 * time.Millisecond, Logger: log,
				Pooled: r.route.Pooled})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { f.Run(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })
			<-f.Ready()
			return f, logs
		}
		keyID := func() string {
			conn, err := pgx.Connect(context.Background(), r.direct)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var id string
			conn.QueryRow(context.Background(), `SELECT key_id FROM codex_launch_credential`).Scan(&id)
			return id
		}
		run("k1:" + k1)
		if id := keyID(); id != "k1" {
			t.Fatalf("sealed with %q", id)
		}
		// Step 2 of the rotation: the new key first, the old one still readable.
		rotated, _ := run("k2:" + k2 + "\nk1:" + k1)
		if st := rotated.State(); st.State != "ok" {
			t.Fatalf("rotated ring: %+v", st)
		}
		if id := keyID(); id != "k2" {
			t.Fatalf("not resealed: %q", id)
		}
		// A launcher that only has the old key says which key it lacks and
		// touches nothing.
		f, logs := run("k1:" + k1)
		st := f.State()
		if st.State != "error" || !strings.Contains(st.Error, `"k2"`) || strings.Contains(st.Error, k1) {
			t.Fatalf("old ring state %+v", st)
		}
		called := false
		err := f.Update(context.Background(), func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
			called = true
			return nil, nil
		})
		if err == nil || called {
			t.Fatalf("Update with an unreadable store: err %v, fn called %v", err, called)
		}
		if id := keyID(); id != "k2" {
			t.Fatalf("the old-key launcher rewrote the row: %q", id)
		}
		// The unreadable row is retried at the poll (30 s), not queried and
		// logged at every look at auth.json (50 ms here).
		time.Sleep(500 * time.Millisecond)
		if n := strings.Count(logs.String(), "credential store sync failed"); n > 1 {
			t.Fatalf("the unreadable row was read and logged %d times in 500 ms", n)
		}
	})
}

// heldUpdate starts an Update on f whose fn (a POST, say) holds the lock
// until release is closed, then returns next; it returns once fn is inside.
func heldUpdate(ctx context.Context, f *Fleet, next *authwatch.AuthFile) (release chan struct{}, done chan error) {
	inside := make(chan struct{})
	release, done = make(chan struct{}), make(chan error, 1)
	go func() {
		done <- f.Update(ctx, func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
			close(inside)
			<-release
			return next, nil
		})
	}()
	<-inside
	return release, done
}

// Update listens to its ctx: a request the follower has not taken is
// withdrawn at once (the launcher's stop must not wait on a stuck follower),
// while one it has taken (its POST may be in flight) is finished and stored.
func TestUpdateWithdrawsOnlyARequestNotYetTaken(t *testing.T) {
	testenv.EachRoute(t, func(t *testing.T, route testenv.Route) {
		r := newRig(t, route, time.Hour, authwatch.DefaultPolicy())
		r.add(1)
		r.start(false)
		f := r.ls[0].fleet
		<-f.Ready()
		if st := f.State(); st.State != "ok" || st.Generation != 1 {
			t.Fatalf("state %+v", st)
		}
		next, err := authwatch.ParseAuthFile(r.mock.AuthJSON(r.cred, time.Now()))
		if err != nil {
			t.Fatal(err)
		}

		// First request: taken by the follower, its fn (the POST) held; its
		// caller gives up meanwhile.
		ctx1, cancel1 := context.WithCancel(context.Background())
		release, first := heldUpdate(ctx1, f, next)

		// Second request: queued behind the first; its caller gives up.
		ctx2, cancel2 := context.WithCancel(context.Background())
		second := make(chan error, 1)
		ran := make(chan struct{}, 1)
		go func() {
			second <- f.Update(ctx2, func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
				ran <- struct{}{}
				return nil, nil
			})
		}()
		time.Sleep(100 * time.Millisecond)
		cancel2()
		select {
		case err := <-second:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("withdrawn update: %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			close(release)
			t.Fatal("Update ignored its ctx while the follower was busy")
		}

		cancel1()
		select {
		case err := <-first:
			close(release)
			t.Fatalf("a taken request returned (%v) before its fn finished", err)
		case <-time.After(200 * time.Millisecond):
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("taken request: %v", err)
		}
		if g := r.storedGeneration(); g != 2 {
			t.Fatalf("stored generation %d, want 2: the taken request's result was not stored", g)
		}
		select {
		case <-ran:
			t.Fatal("the withdrawn request's fn ran")
		case <-time.After(100 * time.Millisecond):
		}
	})
}

func TestNewNeverEchoesABadURL(t *testing.T) {
	for _, u := range []string{"postgres://u:pa ss@host/db", "mysql://u:s3cret@host/db"} {
		_, err := New(Config{URL: u, Home: authwatch.Home{Dir: t.TempDir()}})
		if err == nil || strings.Contains(err.Error(), "pa ss") || strings.Contains(err.Error(), "s3cret") ||
			!strings.Contains(err.Error(), "value hidden") {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

// The store status file belongs to the CLI's user, as auth.json does, even
// when written by root (e.g. `docker exec … refresh`).
func TestStateFileOwnedLikeAuthJSON(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(auth, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(auth, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		home     authwatch.Home
		uid, gid uint32
	}{
		{authwatch.Home{Dir: dir}, 4242, 4343},
		{authwatch.Home{Dir: dir, Owner: &authwatch.Owner{UID: 5151, GID: 5252}}, 5151, 5252},
	} {
		f, err := New(Config{URL: "postgres://u@127.0.0.1:1/db", Home: c.home})
		if err != nil {
			t.Fatal(err)
		}
		f.setState("unavailable", errors.New("test"), 0)
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, StateFileName), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != c.uid || st.Gid != c.gid || st.Mode&0o777 != 0o600 {
			t.Errorf("status file uid %d gid %d mode %o, want %d %d 600", st.Uid, st.Gid, st.Mode&0o777, c.uid, c.gid)
		}
	}
}

// Through a pooler there are no notices: followers whose slow poll is far
// longer than a token's life still adopt each generation within seconds,
// because they poll fast around the moment it falls due. One launcher
// refreshes; the others only follow (no watchdog of theirs looks).
func TestPooledFollowersPollFastAroundTheDueMoment(t *testing.T) {
	r := newRig(t, testenv.Route{Name: "pooled", Pooled: true}, 4*time.Second, shortPolicy)
	r.poll = time.Minute
	r.watchers = 1
	r.add(6)
	r.start(true)
	r.rotate(3)
	r.stop()
	r.checkOnePostPerGeneration()
}

// The pooled schedule: slow while the stored generation is far from due,
// fast from shortly before it until FastWindow after, slow again when the
// refresh does not come; direct followers keep their fixed interval.
func TestNextPollFollowsTheDueMoment(t *testing.T) {
	mock := tokenmock.Start(tokenmock.Options{})
	defer mock.Close()
	policy := authwatch.Policy{Interval: time.Hour, SafetyMargin: 10 * time.Second, StaleAfter: 7 * 24 * time.Hour}
	now := time.Now()
	const slow, fast = 30 * time.Second, 2 * time.Second
	within := func(t *testing.T, from, got time.Time, d time.Duration) {
		t.Helper()
		if wait := got.Sub(from); wait < d*4/5 || wait > d*6/5 {
			t.Fatalf("next poll in %s, want %s ±20%%", wait, d)
		}
	}
	fleetWith := func(pooled bool, expires time.Time) *Fleet {
		f, err := New(Config{URL: "postgres://u@127.0.0.1:1/db", Home: authwatch.Home{Dir: t.TempDir()}, Pooled: pooled,
			PollInterval: slow, FastPollInterval: fast, FastWindow: time.Minute, Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		a, err := authwatch.ParseAuthFile(mock.AuthJSON(mock.IssueWithExpiry("acct", expires), now))
		if err != nil {
			t.Fatal(err)
		}
		f.stored = a
		return f
	}
	t.Run("far from due", func(t *testing.T) {
		within(t, now, fleetWith(true, now.Add(time.Hour)).nextPoll(now), slow)
	})
	// A token living 30 s is due 10 s (the margin) before it expires.
	expires := now.Add(30 * time.Second)
	t.Run("due within the slow interval", func(t *testing.T) {
		// Due in 20 s: the poll comes fastLead before it, not 30 s later
		// (the token's exp has whole seconds).
		got := fleetWith(true, expires).nextPoll(now)
		if want := now.Add(20*time.Second - fastLead); got.Sub(want).Abs() > time.Second {
			t.Fatalf("next poll in %s, want %s", got.Sub(now), want.Sub(now))
		}
	})
	t.Run("due", func(t *testing.T) {
		f := fleetWith(true, expires)
		due := now.Add(25 * time.Second)
		within(t, due, f.nextPoll(due), fast)
		within(t, due, f.nextPoll(due.Add(fast)), fast+fast)
		// The refresh did not come within FastWindow: back to slow.
		later := due.Add(2 * time.Minute)
		if wait := f.nextPoll(later).Sub(later); wait < slow*4/5 {
			t.Fatalf("still polling every %s two minutes after the due moment", wait)
		}
	})
	t.Run("direct", func(t *testing.T) {
		due := now.Add(25 * time.Second)
		if got := fleetWith(false, expires).nextPoll(due); !got.Equal(due.Add(slow)) {
			t.Fatalf("direct next poll in %s, want %s", got.Sub(due), slow)
		}
	})
}

// Through a pooler, an Update that finds another launcher's refresh under
// way is parked, holding no server session: it runs again once the other
// generation has landed (and its fn sees it), a caller that gives up
// withdraws it at once, and one parked past LockTimeout gets the lock
// failure, not a hang.
func TestParkedUpdate(t *testing.T) {
	r := newRig(t, testenv.Route{Name: "pooled", Pooled: true}, time.Hour, authwatch.DefaultPolicy())
	r.add(3)
	r.ls[2].fleet.cfg.LockTimeout = 1500 * time.Millisecond
	r.start(false)
	a, b, c := r.ls[0].fleet, r.ls[1].fleet, r.ls[2].fleet
	for _, f := range []*Fleet{a, b, c} {
		<-f.Ready()
	}
	next, err := authwatch.ParseAuthFile(r.mock.AuthJSON(r.mock.Issue(r.account), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	release, aDone := heldUpdate(ctx, a, next)
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	// b's request parks behind a's refresh.
	bSaw := make(chan *authwatch.AuthFile, 2)
	bDone := make(chan error, 1)
	go func() {
		bDone <- b.Update(ctx, func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
			bSaw <- cur
			return nil, nil
		})
	}()
	// c's caller gives up while parked.
	cctx, cancel := context.WithCancel(ctx)
	cDone := make(chan error, 1)
	go func() {
		cDone <- c.Update(cctx, func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
			t.Error("c's withdrawn request ran")
			return nil, nil
		})
	}()
	time.Sleep(700 * time.Millisecond)
	testenv.NoSessionWaitsOnALock(t, r.direct)
	select {
	case cur := <-bSaw:
		t.Fatalf("b's fn ran while a held the lock (on %v)", cur != nil)
	default:
	}
	start := time.Now()
	cancel()
	select {
	case err := <-cDone:
		if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
			t.Fatalf("withdrawn parked update: %v after %v, want context.Canceled at once", err, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a parked update ignored its caller's ctx")
	}

	// A request parked longer than LockTimeout gets the lock failure.
	start = time.Now()
	err = c.Update(ctx, func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
		t.Error("c's request ran while a held the lock")
		return nil, nil
	})
	if !errors.Is(err, pgstore.ErrLockTimeout) || time.Since(start) < 1500*time.Millisecond || time.Since(start) > 10*time.Second {
		t.Fatalf("parked past LockTimeout (1.5 s): %v after %v, want ErrLockTimeout", err, time.Since(start))
	}

	close(release)
	released = true
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bDone:
		if err != nil {
			t.Fatalf("parked update: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the parked update did not run after the holder committed")
	}
	if cur := <-bSaw; cur == nil || cur.Tokens().RefreshToken != next.Tokens().RefreshToken {
		t.Fatal("b's fn did not run on the generation a stored")
	}
	if len(bSaw) != 0 {
		t.Fatal("b's fn ran twice")
	}
}
