package fleet_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// What the launcher and `refresh` rely on.
var (
	_ authwatch.Store = (*fleet.Running)(nil)
	_ io.Closer       = (*fleet.Running)(nil)
)

const storeName = "postgres://codex@db/fleet (credential team-a)"

// follower is a Follower's Run that the test can watch: it hands over its
// context, runs until that ends and then lingers a little before returning,
// so that a Close that does not wait for it is seen.
type follower struct {
	ctx      chan context.Context
	returned atomic.Bool
}

func newFollower() *follower { return &follower{ctx: make(chan context.Context, 1)} }

func (f *follower) run(ctx context.Context) error {
	f.ctx <- ctx
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	f.returned.Store(true)
	return nil
}

// runCtx is the context Start gave Run.
func (f *follower) runCtx(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-f.ctx:
		f.ctx <- ctx
		return ctx
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not run the follower")
		return nil
	}
}

func newLog() (*testenv.Buffer, hclog.Logger) {
	b := &testenv.Buffer{}
	return b, hclog.New(&hclog.LoggerOptions{Name: "fleet", Output: b, Level: hclog.Trace})
}

const warning = "credential store not synced within the prime timeout; starting on the local credential"

// start calls fleet.Start and fails the test, rather than hanging it, when
// Start has not returned within 30 s. It also says how long Start took.
func start(t *testing.T, ctx context.Context, f fleet.Follower, wait time.Duration, log hclog.Logger) (*fleet.Running, time.Duration) {
	t.Helper()
	type result struct {
		r    *fleet.Running
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		t0 := time.Now()
		r := fleet.Start(ctx, f, wait, log)
		done <- result{r, time.Since(t0)}
	}()
	select {
	case res := <-done:
		t.Cleanup(func() { closeWithin(t, res.r) })
		return res.r, res.took
	case <-time.After(30 * time.Second):
		t.Fatalf("Start(wait %v) still waiting after 30 s", wait)
		return nil, 0
	}
}

// closeWithin closes r and says whether Close returned nil within 10 s: a
// Close that does not stop the follower fails the test instead of hanging it.
func closeWithin(t *testing.T, r *fleet.Running) bool {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
		return err == nil
	case <-time.After(10 * time.Second):
		t.Error("Close still waiting after 10 s: the follower was not stopped")
		return false
	}
}

// Close cancels the follower's context and returns only once Run has.
func TestCloseStopsTheFollowerAndWaitsForIt(t *testing.T) {
	f := newFollower()
	ready := make(chan struct{})
	close(ready)
	r, _ := start(t, context.Background(), fleet.Follower{Run: f.run, Ready: ready, Name: storeName}, time.Hour, nil)
	ctx := f.runCtx(t)
	if ctx.Err() != nil || f.returned.Load() {
		t.Fatal("the follower stopped before Close")
	}
	if !closeWithin(t, r) {
		t.FailNow()
	}
	if ctx.Err() == nil {
		t.Fatal("Close did not cancel the follower's context")
	}
	if !f.returned.Load() {
		t.Fatal("Close returned before the follower did")
	}
	closeWithin(t, r) // a second Close is allowed too
}

// The wait ends as soon as Ready closes, however long it was allowed to
// be; a wait <= 0 is the 10 s default, not "don't wait".
func TestStartWaitsForTheFirstSync(t *testing.T) {
	for _, wait := range []time.Duration{time.Hour, 0, -time.Second} {
		t.Run(wait.String(), func(t *testing.T) {
			f := newFollower()
			ready := make(chan struct{})
			var synced atomic.Bool
			run := func(ctx context.Context) error {
				time.Sleep(100 * time.Millisecond)
				synced.Store(true)
				close(ready)
				return f.run(ctx)
			}
			b, log := newLog()
			_, took := start(t, context.Background(), fleet.Follower{Run: run, Ready: ready, Name: storeName}, wait, log)
			if !synced.Load() {
				t.Fatalf("Start returned after %v, before the first sync", took)
			}
			if took > 5*time.Second {
				t.Fatalf("Start took %v: it went on waiting after the first sync", took)
			}
			if strings.Contains(b.String(), warning) {
				t.Fatalf("warned although the sync came in time:\n%s", b.String())
			}
		})
	}
}

// Without a first sync the wait ends at the timeout with a warning that
// names the store; the follower goes on.
func TestStartGivesUpAtTheTimeoutWithAWarning(t *testing.T) {
	f := newFollower()
	b, log := newLog()
	const wait = 200 * time.Millisecond
	_, took := start(t, context.Background(), fleet.Follower{Run: f.run, Ready: make(chan struct{}), Name: storeName}, wait, log)
	if took < wait || took > wait+5*time.Second {
		t.Fatalf("Start returned after %v, want the %v timeout", took, wait)
	}
	out := b.String()
	if !strings.Contains(out, "[WARN]") || !strings.Contains(out, "fleet: "+warning) ||
		!strings.Contains(out, `store="`+storeName+`"`) {
		t.Fatalf("no warning naming the store:\n%s", out)
	}
	if f.runCtx(t).Err() != nil || f.returned.Load() {
		t.Fatal("the timeout stopped the follower")
	}
}

// A cancelled ctx ends the wait, quietly, but not the follower: its context
// keeps ctx's values and loses only the cancellation.
func TestStartEndsTheWaitOnCtxButNotTheFollower(t *testing.T) {
	type key struct{}
	f := newFollower()
	b, log := newLog()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "value"))
	time.AfterFunc(100*time.Millisecond, cancel)
	_, took := start(t, ctx, fleet.Follower{Run: f.run, Ready: make(chan struct{}), Name: storeName}, time.Hour, log)
	if ctx.Err() == nil {
		t.Fatalf("Start returned after %v, before ctx ended", took)
	}
	if strings.Contains(b.String(), warning) {
		t.Fatalf("warned on a cancelled ctx:\n%s", b.String())
	}
	rctx := f.runCtx(t)
	time.Sleep(50 * time.Millisecond)
	if rctx.Err() != nil || f.returned.Load() {
		t.Fatal("ctx's end stopped the follower")
	}
	if rctx.Value(key{}) != "value" {
		t.Fatal("the follower's context lost ctx's values")
	}
}

// store is an authwatch.Store that says whether it was used.
type store struct {
	authwatch.Store
	loaded *authwatch.AuthFile
}

func (s *store) Load(context.Context) (*authwatch.AuthFile, error) { return s.loaded, nil }

// Running is the follower's store under the follower's name.
func TestRunningIsTheStoreNamed(t *testing.T) {
	ready := make(chan struct{})
	close(ready)
	s := &store{loaded: &authwatch.AuthFile{}}
	r, _ := start(t, context.Background(), fleet.Follower{Store: s, Run: newFollower().run, Ready: ready, Name: storeName}, time.Hour, nil)
	if got, err := r.Load(context.Background()); got != s.loaded || err != nil {
		t.Fatalf("Load: %p %v, want the follower's store's %p", got, err, s.loaded)
	}
	if r.String() != storeName {
		t.Fatalf("String %q", r.String())
	}
}
