package integration

// Crash safety of the commit, through the binary: `refresh --once` SIGKILLed
// at random moments, hundreds of times. auth.json must always parse and hold
// either the credential it held before or the one the mock just minted.

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

func TestRefreshSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	const (
		minKills  = 100
		maxKills  = 300
		budget    = 15 * time.Second
		hardLimit = 2 * time.Minute
	)
	// Every token the mock mints has expired already: every run refreshes.
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	defer srv.Close()
	h := newHome(t, srv)
	h.expired("acct-1")

	// How long a whole run takes here, to spread the kills over it.
	var typical time.Duration
	for range 3 {
		r := h.once()
		if r.Code != exitRefreshed {
			t.Fatalf("calibration run exited %d; output:\n%s", r.Code, lines(r.output()))
		}
		typical = max(typical, r.Wall)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	kills, committed, lostInFlight, untouched, rescued := 0, 0, 0, 0, 0
	// rescuedLatest: the answer a killed run had received waits in the
	// rescue file, which the next run writes before anything else.
	rescuedLatest := func() bool {
		c, ok := fileTokens(readFile(filepath.Join(h.Dir, authwatch.RescueFileName)))
		return ok && sameTokens(c, mustLatest(t, srv, "acct-1"))
	}
	relogin := func() {
		os.Remove(filepath.Join(h.Dir, authwatch.RescueFileName))
		h.expired("acct-1")
	}
	// Kill until the budget is spent, and in any case until minKills: on a
	// loaded machine a run is slower, and the coverage must not shrink
	// with it. The hard limit only guards against a hang.
	for kills < maxKills && (time.Since(start) < budget || kills < minKills) && time.Since(start) < hardLimit {
		before := h.read()
		old, ok := fileTokens(before)
		if !ok {
			t.Fatalf("auth.json does not parse before kill %d", kills)
		}
		if srv.Spent(old.RefreshToken) && !rescuedLatest() {
			// A POST a killed process had sent was redeemed after it
			// died (and after the last look): the file's token is spent.
			// Log in again to go on.
			lostInFlight++
			relogin()
			continue
		}
		genBefore, _ := srv.Latest("acct-1")

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := h.launcherCmd(ctx, "refresh", "--once")
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		// Spread the kills over a whole run; widen the spread when the
		// machine slowed down and no kill reached the commit yet.
		spread := typical + typical/5
		if kills >= 50 && committed == 0 {
			spread *= time.Duration(1 + kills/50)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(spread))))
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		cancel()
		kills++

		after := h.read()
		got, ok := fileTokens(after)
		if !ok {
			t.Fatalf("kill %d: auth.json does not parse (%d bytes)", kills, len(after))
		}
		latest, _ := srv.Latest("acct-1")
		switch {
		case sameTokens(got, latest) && latest.Generation > genBefore.Generation:
			committed++
		case sameTokens(got, old) && latest.Generation == genBefore.Generation:
			untouched++
		case sameTokens(got, latest):
			// A rescued answer written, then killed before a POST.
			untouched++
		case sameTokens(got, old) && rescuedLatest():
			// Killed after the answer was stashed in the rescue file:
			// the next run writes it.
			rescued++
		case sameTokens(got, old):
			// Killed between the redemption and the stash: the old token
			// is spent. Unavoidable for any refresher; the file is intact.
			// Log in again to go on.
			lostInFlight++
			relogin()
		default:
			t.Fatalf("kill %d: auth.json holds neither the old nor the new credential", kills)
		}
		// The status file is written by rename too: absent or whole, never
		// empty or torn (h.status fails the test on anything but a JSON object).
		h.status()
	}
	t.Logf("%d kills in %s (a run takes ~%s): %d after the commit, %d before the POST, %d with the answer in the rescue file, %d between POST and commit",
		kills, time.Since(start).Round(time.Millisecond), typical.Round(time.Millisecond), committed, untouched, rescued, lostInFlight)
	if kills < minKills {
		t.Errorf("only %d kills within %s", kills, hardLimit)
	}
	if committed == 0 || untouched == 0 {
		t.Errorf("the kills did not cover both sides of the commit (%d after, %d before)", committed, untouched)
	}

	// Temporary files a crash left behind are removed by the next commit
	// once they are old enough not to belong to a live writer.
	if c, _ := fileTokens(h.read()); srv.Spent(c.RefreshToken) && !rescuedLatest() {
		relogin()
	}
	ents, _ := os.ReadDir(h.Dir)
	old := time.Now().Add(-10 * time.Minute)
	temps := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			temps++
			_ = os.Chtimes(filepath.Join(h.Dir, e.Name()), old, old)
		}
	}
	if r := h.once(); r.Code != exitRefreshed {
		t.Fatalf("clean run after the kills exited %d; output:\n%s", r.Code, lines(r.output()))
	}
	h.wantTokens(mustLatest(t, srv, "acct-1"), "after the clean run")
	var left []string
	ents, _ = os.ReadDir(h.Dir)
	for _, e := range ents {
		switch e.Name() {
		case "auth.json", "auth.lock", "auth.json.lock", "auth_refresh_status.json":
		default:
			left = append(left, e.Name())
		}
	}
	sort.Strings(left)
	if len(left) > 0 {
		t.Errorf("after a clean run, %d of %d crash leftovers remain: %v", len(left), temps, left)
	}
	t.Logf("%d temporary files left by the kills, all removed by the next commit", temps)
}

func mustLatest(t *testing.T, srv *tokenmock.Server, account string) tokenmock.Credential {
	t.Helper()
	c, ok := srv.Latest(account)
	if !ok {
		t.Fatalf("no credential for %s", account)
	}
	return c
}

// readFile is the file's bytes, nil when it cannot be read.
func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
