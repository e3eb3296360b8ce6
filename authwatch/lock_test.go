package authwatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdLock takes flock(LOCK_EX) on a CODEX_HOME lock file the way another
// process would (a separate open file description conflicts with ours even
// inside one process) and returns the release.
func holdLock(t *testing.T, h Home, name string) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(h.Dir, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	rel := func() { once.Do(func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }) }
	t.Cleanup(rel)
	return rel
}

// cliWrite is a writer that follows the CLI 0.169 protocol: auth.lock
// (blocking), re-read, auth.json.lock (LOCK_NB retried every 10 ms), re-read,
// temp file + rename. mutate changes the decoded file; it is written back
// with encoding/json, as another program would.
func cliWrite(h Home, mutate func(m map[string]any)) error {
	l1, err := os.OpenFile(filepath.Join(h.Dir, "auth.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer l1.Close()
	if err := unix.Flock(int(l1.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	defer unix.Flock(int(l1.Fd()), unix.LOCK_UN)
	l2, err := os.OpenFile(filepath.Join(h.Dir, "auth.json.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer l2.Close()
	for i := 0; ; i++ {
		err := unix.Flock(int(l2.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if i > 500 {
			return fmt.Errorf("auth.json.lock: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer unix.Flock(int(l2.Fd()), unix.LOCK_UN)
	data, err := os.ReadFile(h.AuthPath())
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	mutate(m)
	out, _ := json.MarshalIndent(m, "", "  ")
	tmp := filepath.Join(h.Dir, ".cli-tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, h.AuthPath())
}

// cliRefresh is the CLI committing a refresh of its own: c's tokens and
// last_refresh at, written through cliWrite.
func cliRefresh(h Home, c cred, at time.Time) error {
	return cliWrite(h, func(m map[string]any) {
		tk := m["tokens"].(map[string]any)
		tk["id_token"], tk["access_token"], tk["refresh_token"] = c.ID, c.Access, c.Refresh
		m["last_refresh"] = FormatTimestamp(at)
	})
}

// TestCLIWriterRacesWatchdog: a writer following the CLI's protocol keeps
// rewriting auth.json (a counter in a key of its own) while the watchdog keeps
// refreshing. No update of either side may be lost: the final file holds the
// writer's last counter and the refresh token the endpoint issued last, and
// the endpoint never saw a spent token.
func TestCLIWriterRacesWatchdog(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Hour))
	h := testHome(t, c0.file(now))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	m.accessIn = time.Hour
	lg, _ := testLogger(t)
	w, err := New(Config{Home: h, Endpoint: m.endpoint(t, 5*time.Second), Owner: true, Logger: lg,
		// Always due (last_refresh is stale at once): every pass refreshes.
		Policy: Policy{Interval: time.Hour, SafetyMargin: 2 * time.Hour, StaleAfter: time.Nanosecond}})
	if err != nil {
		t.Fatal(err)
	}
	const writes, passes = 40, 25
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= writes; i++ {
			if err := cliWrite(h, func(m map[string]any) { m["cli_counter"] = i }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	refreshed := 0
	for i := 0; i < passes; i++ {
		out, err := w.Pass(context.Background())
		if out != OutcomeRefreshed {
			t.Fatalf("pass %d: %v %v", i, out, err)
		}
		refreshed++
	}
	wg.Wait()
	f, _, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	current := m.current
	m.mu.Unlock()
	if f.Tokens().RefreshToken != current {
		t.Fatal("a refresh was lost: auth.json does not hold the last issued refresh token")
	}
	if !strings.Contains(string(f.Marshal()), `"cli_counter": 40`) {
		t.Fatalf("a CLI write was lost:\n%s", f.Marshal())
	}
	if m.postCount() != refreshed {
		t.Fatalf("%d POSTs for %d refreshes (a spent token was sent)", m.postCount(), refreshed)
	}
}

func TestRefreshLockTimeoutIsTransient(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	orig := c0.file(now.Add(-time.Hour))
	h := testHome(t, orig)
	h.LockTimeout = 100 * time.Millisecond
	holdLock(t, h, "auth.lock")
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	start := time.Now()
	out, err := w.Pass(context.Background())
	var re *RefreshError
	if out != OutcomeTransient || !errors.As(err, &re) || re.Kind != KindLockTimeout || !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("got %v %v", out, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("lock wait not bounded")
	}
	if m.postCount() != 0 || !bytes.Equal(readAuth(t, h), orig) {
		t.Fatal("POSTed or wrote without the lock")
	}
	st, _ := ReadStatus(h)
	if st.WatchdogLastOutcome != "fail:transient_lock_timeout" {
		t.Fatalf("status %+v", st)
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	h := testHome(t, nil)
	h.LockTimeout = time.Hour
	holdLock(t, h, "auth.lock")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := NewFileStore(h).Update(ctx, func(context.Context, *AuthFile) (*AuthFile, error) {
		t.Fatal("fn ran without the lock")
		return nil, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// TestCommitLockWedgedAfterPostStillCommits: a process that holds
// auth.json.lock forever (not following the protocol: it does not hold
// auth.lock) must not make us drop tokens the endpoint already issued.
func TestCommitLockWedgedAfterPostStillCommits(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	h.LockTimeout = 100 * time.Millisecond
	holdLock(t, h, "auth.json.lock")
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	lg, buf := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	out, err := w.Pass(context.Background())
	if out != OutcomeRefreshed {
		t.Fatalf("got %v %v", out, err)
	}
	f, _, _ := h.Read()
	if f.Tokens().RefreshToken != m.issued.Refresh {
		t.Fatal("issued tokens not committed")
	}
	if !strings.Contains(buf.String(), "renamed without it") {
		t.Fatal("forced commit not logged")
	}
}

// TestCLICommitWaitsForOurs: the CLI's commit (auth.lock, blocking) started
// while our refresh is in flight waits until ours is committed, then sees our
// file.
func TestCLICommitWaitsForOurs(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	var seen string
	done := make(chan struct{})
	m.onPost = func() {
		go func() {
			defer close(done)
			// The CLI takes auth.lock to commit; it must block until
			// our commit is done, and then adopt our file.
			err := cliWrite(h, func(mm map[string]any) {
				seen = mm["tokens"].(map[string]any)["refresh_token"].(string)
			})
			if err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(50 * time.Millisecond) // give the CLI time to block on auth.lock
	}
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	if out, err := w.Pass(context.Background()); out != OutcomeRefreshed {
		t.Fatalf("got %v %v", out, err)
	}
	<-done
	if seen != m.issued.Refresh {
		t.Fatal("the CLI's commit did not see our refreshed file under auth.lock")
	}
}

// TestPermanentThenRotatedByCLI: the CLI (which POSTs without a lock)
// redeemed the token first; our POST gets refresh_token_reused; the CLI
// commits its rotated token as soon as we release auth.lock. The credential
// is alive: outcome 1, nothing marked dead.
func TestPermanentThenRotatedByCLI(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	c1 := newCred(1, now.Add(8*24*time.Hour))
	m.push(answer{status: 401, body: `{"error":{"code":"refresh_token_reused"}}`})
	m.onPost = func() {
		m.mu.Lock()
		m.current = c1.Refresh
		m.onPost = nil
		m.mu.Unlock()
		go func() {
			if err := cliRefresh(h, c1, time.Now()); err != nil {
				t.Error(err)
			}
		}()
	}
	lg, buf := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg,
		RecheckWindow: 3 * time.Second, RecheckEvery: 10 * time.Millisecond})
	out, err := w.Pass(context.Background())
	if out != OutcomeNothingToDo || err != nil {
		t.Fatalf("got %v %v\n%s", out, err, buf.String())
	}
	st, _ := ReadStatus(h)
	if st.WatchdogLastOutcome != "skip:adopted" || st.Credential != "ok" || st.ConsecutiveFailures != 0 {
		t.Fatalf("status %+v", st)
	}
	f, _, _ := h.Read()
	if f.Tokens().RefreshToken != c1.Refresh {
		t.Fatal("CLI's rotation not on disk")
	}
	// And the next pass has nothing to do (the CLI's token is fresh), no POST.
	if out, _ := w.Pass(context.Background()); out != OutcomeNothingToDo || m.postCount() != 1 {
		t.Fatalf("second pass %v, %d posts", out, m.postCount())
	}
}

// TestPermanentStopsSpendingUntilNewLogin: after a permanent answer the dead
// token is never sent again; a new login (auth.json with another refresh
// token) is refreshed normally.
func TestPermanentStopsSpendingUntilNewLogin(t *testing.T) {
	now := time.Now()
	w, h, m, orig := rejectedLogin(t, now)
	for i := 0; i < 3; i++ {
		if out, err := w.Pass(context.Background()); out != OutcomePermanent || !isPermanent(err) {
			t.Fatalf("pass %d: %v %v", i, out, err)
		}
	}
	if m.postCount() != 1 {
		t.Fatalf("dead token sent %d times", m.postCount())
	}
	if !bytes.Equal(readAuth(t, h), orig) {
		t.Fatal("auth.json changed")
	}
	st, _ := ReadStatus(h)
	if st.Credential != "dead" || st.WatchdogLastOutcome != "fail:permanent_dead_token" || st.LastHTTPStatus != 401 {
		t.Fatalf("status %+v", st)
	}
	// Someone logs in again.
	c5 := newCred(5, now.Add(time.Minute))
	m.mu.Lock()
	m.current = c5.Refresh
	m.mu.Unlock()
	if err := os.WriteFile(h.AuthPath(), c5.file(now.Add(-time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := w.Pass(context.Background()); out != OutcomeRefreshed {
		t.Fatalf("after new login: %v %v", out, err)
	}
	st, _ = ReadStatus(h)
	if st.Credential != "ok" || st.ConsecutiveFailures != 0 || st.LastErrorClass != "" {
		t.Fatalf("status %+v", st)
	}
}

// TestOldCLIInPlaceWriteSupersedes: an old CLI (no locks) rewrote auth.json
// with a newer credential while our POST was in flight: ours is dropped,
// theirs kept.
func TestOldCLIInPlaceWriteSupersedes(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	c9 := newCred(9, now.Add(9*24*time.Hour))
	newer := c9.file(now)
	m.onPost = func() {
		if err := os.WriteFile(h.AuthPath(), newer, 0o600); err != nil { // in place, no lock
			t.Error(err)
		}
	}
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	out, err := w.Pass(context.Background())
	if out != OutcomeNothingToDo || err != nil {
		t.Fatalf("got %v %v", out, err)
	}
	if !bytes.Equal(readAuth(t, h), newer) {
		t.Fatal("the newer credential was replaced")
	}
	st, _ := ReadStatus(h)
	if st.WatchdogLastOutcome != "skip:superseded" {
		t.Fatalf("status %+v", st)
	}
}

// TestGuardedReloadAdopts: between our unlocked look and the locked re-read,
// someone refreshed; no POST is made.
func TestGuardedReloadAdopts(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	rel := holdLock(t, h, "auth.lock")
	c1 := newCred(1, now.Add(9*24*time.Hour))
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(h.AuthPath(), c1.file(now), 0o600)
		rel()
	}()
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	out, err := w.Pass(context.Background())
	if out != OutcomeNothingToDo || err != nil || m.postCount() != 0 {
		t.Fatalf("got %v %v posts=%d", out, err, m.postCount())
	}
	st, _ := ReadStatus(h)
	if st.WatchdogLastOutcome != "skip:adopted" {
		t.Fatalf("status %+v", st)
	}
}

func TestCancelBeforePostAbandons(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	orig := c0.file(now.Add(-time.Hour))
	h := testHome(t, orig)
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, _ := w.Pass(ctx)
	if out != OutcomeTransient || m.postCount() != 0 || !bytes.Equal(readAuth(t, h), orig) {
		t.Fatalf("got %v posts=%d", out, m.postCount())
	}
}

// TestCancelDuringPostStillCommits: the child exited (ctx cancelled) while the
// POST was in flight; the redeemed token's answer is still written.
func TestCancelDuringPostStillCommits(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	m.onPost = func() { cancel(); time.Sleep(50 * time.Millisecond) }
	lg, _ := testLogger(t)
	w, _ := New(Config{Home: h, Endpoint: m.endpoint(t, 2*time.Second), Owner: true, Logger: lg})
	out, err := w.Pass(ctx)
	if out != OutcomeRefreshed {
		t.Fatalf("got %v %v", out, err)
	}
	f, _, _ := h.Read()
	if f.Tokens().RefreshToken != m.issued.Refresh {
		t.Fatal("redeemed token's answer not committed")
	}
}

func TestNotOwnerNeverPosts(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	orig := c0.file(now.Add(-time.Hour))
	h := testHome(t, orig)
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	lg, _ := testLogger(t)
	w, err := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: false, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Pass(context.Background())
	if out != OutcomeNothingToDo || err != nil || m.postCount() != 0 || !bytes.Equal(readAuth(t, h), orig) {
		t.Fatalf("got %v %v posts=%d", out, err, m.postCount())
	}
	st, _ := ReadStatus(h)
	if st.RefreshOwner || st.Credential != "refresh_due" || st.WatchdogLastOutcome != "skip:not_owner" {
		t.Fatalf("status %+v", st)
	}
	// Without an endpoint at all, a non-owner is fine.
	if _, err := New(Config{Home: h}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Home: h, Owner: true}); err == nil {
		t.Fatal("owner without endpoint accepted")
	}
}

func TestMissingCodexHomeIsCleanSkip(t *testing.T) {
	h := Home{Dir: filepath.Join(t.TempDir(), "nope")}
	lg, buf := testLogger(t)
	w, _ := New(Config{Home: h, Logger: lg})
	out, err := w.Pass(context.Background())
	if out != OutcomeNothingToDo || err != nil {
		t.Fatalf("got %v %v", out, err)
	}
	if _, err := os.Stat(h.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("CODEX_HOME created")
	}
	if !strings.Contains(buf.String(), "CODEX_HOME is not there") {
		t.Fatalf("log: %s", buf.String())
	}
	if err := WriteStatus(h, Status{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteStatus: %v", err)
	}
}

func TestSkipReasonsInStatus(t *testing.T) {
	cases := map[string]struct {
		data    []byte
		outcome string
		cred    string
	}{
		"no auth.json":      {nil, "skip:no_auth_json", "absent"},
		"api key":           {[]byte(`{"OPENAI_API_KEY":"sk-` + sentinel + `"}`), "skip:not_refreshable", "not_refreshable"},
		"chatgptAuthTokens": {cliFile("chatgptAuthTokens", "i", "a", "rt-"+sentinel, "acct", time.Now(), ""), "skip:not_refreshable", "not_refreshable"},
		"garbage":           {[]byte(`{"tokens": "rt-` + sentinel), "skip:unreadable", "unreadable"},
		"fresh":             {newCred(0, time.Now().Add(48*time.Hour)).file(time.Now()), "skip", "ok"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h := testHome(t, c.data)
			lg, _ := testLogger(t)
			w, _ := New(Config{Home: h, Logger: lg, Owner: false})
			out, err := w.Pass(context.Background())
			if out != OutcomeNothingToDo || err != nil {
				t.Fatalf("got %v %v", out, err)
			}
			raw, _ := os.ReadFile(h.StatusPath())
			noLeak(t, "status", string(raw))
			st, _ := ReadStatus(h)
			if st.WatchdogLastOutcome != c.outcome || st.Credential != c.cred || st.Reason == "" {
				t.Fatalf("status %+v", st)
			}
			if c.data != nil && !bytes.Equal(readAuth(t, h), c.data) {
				t.Fatal("auth.json touched")
			}
			info, _ := os.Stat(h.StatusPath())
			if info.Mode().Perm() != 0o600 {
				t.Fatalf("status mode %v", info.Mode())
			}
		})
	}
}

// TestEightWatchdogsOnePost: eight independent watchdogs (each its own lock
// file descriptions, as separate processes would have) pass at once over one
// expired file: exactly one POST, the others adopt its result.
func TestEightWatchdogsOnePost(t *testing.T) {
	now := time.Now()
	c0 := newCred(0, now.Add(time.Minute))
	h := testHome(t, c0.file(now.Add(-time.Hour)))
	m := newMockEndpoint(t, c0.Refresh, time.Now)
	m.onPost = func() { time.Sleep(20 * time.Millisecond) } // widen the race
	lg, _ := testLogger(t)
	outs := make(chan Outcome, 8)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 8; i++ {
		w, err := New(Config{Home: h, Endpoint: m.endpoint(t, 5*time.Second), Owner: true, Logger: lg})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out, _ := w.Pass(context.Background())
			outs <- out
		}()
	}
	close(start)
	wg.Wait()
	close(outs)
	count := map[Outcome]int{}
	for o := range outs {
		count[o]++
	}
	if m.postCount() != 1 || count[OutcomeRefreshed] != 1 || count[OutcomeNothingToDo] != 7 {
		t.Fatalf("%d POSTs, outcomes %v", m.postCount(), count)
	}
	f, _, _ := h.Read()
	if f.Tokens().RefreshToken != m.issued.Refresh {
		t.Fatal("file does not hold the new tokens")
	}
}

// TestNewRefusesADeferredDirSync: a Home that hands its directory fsync
// away must not reach a watchdog, whose refresh commits must be durable on
// return; the mistake is refused, not left to a comment.
func TestNewRefusesADeferredDirSync(t *testing.T) {
	h := Home{Dir: t.TempDir(), DeferDirSync: func(sync func() error) { go sync() }}
	if _, err := New(Config{Home: h}); err == nil {
		t.Error("New accepted a Home with DeferDirSync")
	}
	if _, err := New(Config{Home: Home{Dir: h.Dir}, Store: &FileStore{Home: h}}); err == nil {
		t.Error("New accepted a FileStore whose Home has DeferDirSync")
	}
	if _, err := New(Config{Home: Home{Dir: h.Dir}}); err != nil {
		t.Errorf("New refused a plain Home: %v", err)
	}
}
