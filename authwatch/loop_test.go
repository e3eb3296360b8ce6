package authwatch

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopRig runs Run on a fake clock against the mock endpoint and records the
// fake time of every POST.
type loopRig struct {
	t     *testing.T
	clock *fakeClock
	home  Home
	m     *mockEndpoint
	w     *Watchdog
	log   *logBuf

	mu    sync.Mutex
	posts []time.Time
}

var loopStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func newLoopRig(t *testing.T, file []byte, current string, owner bool, tweak func(*Config)) *loopRig {
	t.Helper()
	r := &loopRig{t: t, clock: &fakeClock{t: loopStart}}
	r.home = testHome(t, file)
	r.m = newMockEndpoint(t, current, r.clock.Now)
	r.m.accessIn = 8 * time.Hour
	r.m.onPost = r.recordPost
	lg, buf := testLogger(t)
	r.log = buf
	cfg := Config{Home: r.home, Endpoint: r.m.endpoint(t, 5*time.Second), Owner: owner, Logger: lg,
		Now: r.clock.Now, Sleep: r.clock.Sleep, Jitter: func(time.Duration) time.Duration { return 0 },
		PollInterval: time.Hour}
	if tweak != nil {
		tweak(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	return r
}

func (r *loopRig) recordPost() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts = append(r.posts, r.clock.Now())
}

func (r *loopRig) postTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.posts...)
}

// run runs the loop until stop says so (checked after every fake sleep) or
// the fake time passes limit.
func (r *loopRig) run(limit time.Duration, stop func(now time.Time) bool) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prev := r.clock.onSleep
	r.clock.onSleep = func(now time.Time) {
		if prev != nil {
			prev(now)
		}
		if stop(now) || now.Sub(loopStart) > limit {
			cancel()
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			r.t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		r.t.Fatal("Run did not stop")
	}
}

func offsets(ts []time.Time, from time.Time) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.Sub(from))
		from = t
	}
	return out
}

func equalDurs(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLoopSchedulesAtExpiryMinusMargin: a token valid for 8 h with a 4 h
// margin is refreshed every 4 h, exactly; the 6 h interval never fires first.
func TestLoopSchedulesAtExpiryMinusMargin(t *testing.T) {
	c0 := newCred(0, loopStart.Add(8*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, nil)
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 3 })
	got := offsets(r.postTimes(), loopStart)
	want := []time.Duration{4 * time.Hour, 4 * time.Hour, 4 * time.Hour}
	if !equalDurs(got, want) {
		t.Fatalf("POSTs at %v, want %v", got, want)
	}
	st, _ := ReadStatus(r.home)
	if !st.WatchdogLoop || st.NextCheckAt == "" {
		t.Fatalf("status %+v", st)
	}
}

// TestLoopIntervalFirst: a long-lived token is looked at every interval, and
// refreshed when stale-after comes (7 days), not before.
func TestLoopIntervalFirst(t *testing.T) {
	c0 := newCred(0, loopStart.Add(30*24*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-6*24*time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 24 * time.Hour })
	r.m.accessIn = 30 * 24 * time.Hour
	r.run(200*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 1 })
	got := offsets(r.postTimes(), loopStart)
	// last_refresh was 6 days old: stale after 7 days → 24 h from now,
	// reached through the 6 h interval checks.
	if !equalDurs(got, []time.Duration{24 * time.Hour}) {
		t.Fatalf("POSTs at %v", got)
	}
	sleeps := r.clock.sleeps
	for _, s := range sleeps {
		if s > 6*time.Hour {
			t.Fatalf("slept %s, longer than the interval", s)
		}
	}
}

// TestLoopBackoff: transient failures are retried 10 s, 20 s, 40 s ...
// capped at 10 min; success resets the backoff.
func TestLoopBackoff(t *testing.T) {
	c0 := newCred(0, loopStart.Add(3*time.Hour)) // due (margin 4 h), expiry far enough not to cap
	r := newLoopRig(t, c0.file(loopStart.Add(-20*time.Hour)), c0.Refresh, true, nil)
	for i := 0; i < 9; i++ {
		r.m.push(answer{status: 500, body: `{"error":"server_error"}`})
	}
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 11 })
	got := offsets(r.postTimes(), loopStart)
	s := time.Second
	want := []time.Duration{0, 10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 320 * s, 600 * s, 600 * s,
		600 * s,       // 10th POST succeeds
		4 * time.Hour} // then the normal schedule: 8 h token, 4 h margin
	if !equalDurs(got, want) {
		t.Fatalf("POSTs at %v\nwant      %v", got, want)
	}
}

func TestLoopHonoursRetryAfterButNotPastExpiry(t *testing.T) {
	c0 := newCred(0, loopStart.Add(3*time.Minute))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, nil)
	r.m.push(
		answer{status: 429, header: map[string]string{"Retry-After": "90"}},   // > 10 s backoff: honoured
		answer{status: 503, header: map[string]string{"Retry-After": "3600"}}, // would pass expiry: capped
		answer{status: 500},
	)
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 4 })
	got := offsets(r.postTimes(), loopStart)
	// 0: 429 → wait 90 s. 90 s: 503 asks 1 h but the token expires at 3 min
	// (guard 1 min) → wait 30 s. 120 s: 500, inside the guard → plain
	// backoff of the 3rd failure, 40 s. 160 s: success.
	want := []time.Duration{0, 90 * time.Second, 30 * time.Second, 40 * time.Second}
	if !equalDurs(got, want) {
		t.Fatalf("POSTs at %v, want %v", got, want)
	}
}

// TestLoopPermanentWaitsForNewLogin: after a permanent failure the loop
// never sends the dead token again, and picks up a new login as soon as
// auth.json changes.
func TestLoopPermanentWaitsForNewLogin(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), "not-c0", true, func(c *Config) {
		c.PollInterval = 10 * time.Minute
		c.RecheckWindow = 2 * time.Second
		c.RecheckEvery = time.Second
	})
	c5 := newCred(5, loopStart.Add(time.Hour))
	var once sync.Once
	prevHook := r.clock.onSleep
	r.clock.onSleep = func(now time.Time) {
		if prevHook != nil {
			prevHook(now)
		}
		if now.Sub(loopStart) >= 30*time.Hour {
			once.Do(func() {
				r.m.mu.Lock()
				r.m.current = c5.Refresh
				r.m.mu.Unlock()
				if err := os.WriteFile(r.home.AuthPath(), c5.file(now.Add(-time.Hour)), 0o600); err != nil {
					t.Error(err)
				}
			})
		}
	}
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 2 })
	posts := r.postTimes()
	if len(posts) != 2 {
		t.Fatalf("posts %v", posts)
	}
	// The dead token was sent once, at the start; the new login within one
	// poll of its appearance (30 h after the start).
	if !posts[0].Equal(loopStart) || posts[1].Sub(loopStart) < 30*time.Hour || posts[1].Sub(loopStart) > 30*time.Hour+10*time.Minute+5*time.Second {
		t.Fatalf("posts at %v", offsets(posts, loopStart))
	}
	if !strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatal("change not logged")
	}
	f, _, _ := r.home.Read()
	if f.Tokens().RefreshToken != r.m.issued.Refresh {
		t.Fatal("new login not refreshed")
	}
}

// TestLoopNoticesCLIRewrite: the CLI refreshed by itself; the loop notices,
// logs it, re-decides from the new file and reports its new expiry.
func TestLoopNoticesCLIRewrite(t *testing.T) {
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	c1 := newCred(1, loopStart.Add(50*time.Hour))
	var once sync.Once
	r.clock.onSleep = func(now time.Time) {
		if now.Sub(loopStart) >= time.Hour {
			once.Do(func() {
				if err := cliRefresh(r.home, c1, now); err != nil {
					t.Error(err)
				}
			})
		}
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= 2*time.Hour })
	if len(r.postTimes()) != 0 {
		t.Fatal("POSTed")
	}
	if !strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatal("rewrite not noticed")
	}
	st, _ := ReadStatus(r.home)
	if st.AccessTokenExpiresAt != c1.Exp.Format(time.RFC3339) {
		t.Fatalf("status not re-decided from the new file: %+v", st)
	}
	// Next check follows the new file: exp 50 h - margin 4 h is after the
	// 6 h interval, so interval from the re-decision at 1 h.
	if st.NextCheckAt != loopStart.Add(7*time.Hour).Format(time.RFC3339) {
		t.Fatalf("next check %s", st.NextCheckAt)
	}
}

func TestLoopNotOwnerWatchesOnly(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, false, nil)
	passes := 0
	r.run(100*time.Hour, func(now time.Time) bool {
		passes++
		return now.Sub(loopStart) >= 3*time.Hour
	})
	if len(r.postTimes()) != 0 {
		t.Fatal("a non-owner POSTed")
	}
	st, _ := ReadStatus(r.home)
	if st.Credential != "refresh_due" || st.RefreshOwner {
		t.Fatalf("status %+v", st)
	}
	// It re-checks every MaxBackoff (10 min) while a refresh is due.
	for _, s := range r.clock.sleeps {
		if s > 10*time.Minute {
			t.Fatalf("slept %s", s)
		}
	}
}

func TestLoopStopsOnCancel(t *testing.T) {
	c0 := newCred(0, time.Now().Add(48*time.Hour))
	h := testHome(t, c0.file(time.Now()))
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Logger: lg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run ignored cancellation")
	}
}

func TestDefaultJitterBounded(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if j := defaultJitter(time.Hour); j < 0 || j > 30*time.Second {
			t.Fatalf("jitter %s", j)
		}
		if j := defaultJitter(10 * time.Second); j < 0 || j > 500*time.Millisecond {
			t.Fatalf("jitter %s", j)
		}
	}
	if defaultJitter(0) != 0 {
		t.Fatal("jitter of nothing")
	}
}

// TestLoopShortLivedTokens: an endpoint that issues tokens living shorter
// than the safety margin must not make the loop refresh back to back.
func TestLoopShortLivedTokens(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, nil)
	r.m.accessIn = time.Hour // margin is 4 h
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 4 })
	got := offsets(r.postTimes(), loopStart)
	want := []time.Duration{0, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute}
	if !equalDurs(got, want) {
		t.Fatalf("POSTs at %v, want %v", got, want)
	}
	if strings.Count(r.log.String(), "shorter than twice the safety margin") != 1 {
		t.Fatal("not logged")
	}
}

// TestLoopShortTokensOneRefreshPerHalfLife: 1 h tokens, the default 4 h
// margin and a 5 min interval, over two simulated days: one refresh per
// half-life (30 min), never one per pass.
func TestLoopShortTokensOneRefreshPerHalfLife(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart), c0.Refresh, true, func(c *Config) {
		c.Policy = Policy{Interval: 5 * time.Minute, SafetyMargin: 4 * time.Hour, StaleAfter: 7 * 24 * time.Hour}
	})
	r.m.accessIn = time.Hour
	const days = 2
	r.run(days*24*time.Hour, func(time.Time) bool { return false })
	got := offsets(r.postTimes(), loopStart)
	if len(got) != days*48 {
		t.Fatalf("%d POSTs in %d days, want %d (one per 30 min)", len(got), days, days*48)
	}
	for i, d := range got {
		if d != 30*time.Minute {
			t.Fatalf("POST %d came %s after the one before, want 30m0s", i, d)
		}
	}
}

// TestEffectiveMarginFromIssuedAt: the lifetime comes from the later of the
// access token's iat and last_refresh.
func TestEffectiveMarginFromIssuedAt(t *testing.T) {
	now := loopStart
	p := DefaultPolicy()
	mk := func(iat, exp time.Time, lr string) *AuthFile {
		access := mintJWT(map[string]any{"iat": iat.Unix(), "exp": exp.Unix()})
		js := `{"auth_mode":"chatgpt","tokens":{"id_token":"i","access_token":"` + access + `","refresh_token":"r","account_id":"a"}`
		if lr != "" {
			js += `,"last_refresh":"` + lr + `"`
		}
		f, err := ParseAuthFile([]byte(js + "}"))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, c := range []struct {
		name string
		f    *AuthFile
		want time.Duration
	}{
		{"iat, no last_refresh", mk(now, now.Add(2*time.Hour), ""), time.Hour},
		{"iat later than last_refresh", mk(now, now.Add(2*time.Hour), FormatTimestamp(now.Add(-time.Hour))), time.Hour},
		{"last_refresh later than iat", mk(now.Add(-5*time.Hour), now.Add(2*time.Hour), FormatTimestamp(now)), time.Hour},
		{"long-lived token", mk(now, now.Add(10*24*time.Hour), ""), 4 * time.Hour},
		{"iat after exp", mk(now.Add(3*time.Hour), now.Add(2*time.Hour), ""), 4 * time.Hour},
	} {
		if got := EffectiveMargin(c.f, p); got != c.want {
			t.Errorf("%s: margin %s, want %s", c.name, got, c.want)
		}
	}
}

// failingUpdate is a store whose Update never runs fn: it returns what err
// makes of the pass's ctx (a store withdrawn by a stop, or timed out).
type failingUpdate struct {
	Store
	err func(ctx context.Context) error
}

func (s failingUpdate) Update(ctx context.Context, _ func(ctx context.Context, cur *AuthFile) (*AuthFile, error)) error {
	return s.err(ctx)
}

// A refresh abandoned before its POST because the launcher stops is no
// failure to warn about; a store whose call timed out (a deadline, not a
// stop) is one, and says so.
func TestStopBeforeThePostIsQuietAStoreTimeoutIsNot(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Minute))
	for _, tc := range []struct {
		name     string
		err      func(ctx context.Context, cancel context.CancelFunc) error
		wantWarn bool
	}{
		{"stopping", func(ctx context.Context, cancel context.CancelFunc) error {
			cancel()
			return fmt.Errorf("store update withdrawn before it ran: %w", ctx.Err())
		}, false},
		{"store timeout", func(ctx context.Context, cancel context.CancelFunc) error {
			return fmt.Errorf("read credential: %w", context.DeadlineExceeded)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) {
				c.Store = failingUpdate{Store: NewFileStore(c.Home), err: func(ctx context.Context) error { return tc.err(ctx, cancel) }}
			})
			out, err := r.w.Pass(ctx)
			if out != OutcomeTransient || err == nil {
				t.Fatalf("pass: %v %v, want a transient failure", out, err)
			}
			if warned := strings.Contains(r.log.String(), "[WARN]"); warned != tc.wantWarn {
				t.Fatalf("warned %v, want %v; log:\n%s", warned, tc.wantWarn, r.log.String())
			}
			if r.m.postCount() != 0 {
				t.Fatal("a POST was sent")
			}
		})
	}
}
