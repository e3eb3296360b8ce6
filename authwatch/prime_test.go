package authwatch

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// prime runs the prime pass to its end, status file included, before the
// test goes on: as a launcher whose child waits for the credential does.
func (r *loopRig) prime() (Outcome, error) {
	r.t.Helper()
	pr := r.w.StartPrime()
	out, err := pr.Result()
	pr.Finish()
	return out, err
}

// TestPrimeThenRunNoticesAChangeInBetween: auth.json rewritten after the
// prime but before Run's wait began is still a change for Run's first poll: it
// re-decides from the new file instead of sleeping to the old schedule.
func TestPrimeThenRunNoticesAChangeInBetween(t *testing.T) {
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	if out, err := r.prime(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	c1 := newCred(1, loopStart.Add(50*time.Hour))
	if err := cliRefresh(r.home, c1, loopStart); err != nil {
		t.Fatal(err)
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if !strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("change between the prime and Run not noticed:\n%s", r.log.String())
	}
	st, _ := ReadStatus(r.home)
	if st.AccessTokenExpiresAt != c1.Exp.Format(time.RFC3339) {
		t.Fatalf("status not re-decided from the new file: %+v", st)
	}
	if len(r.postTimes()) != 0 {
		t.Fatal("POSTed")
	}
}

// StartPrime gives the outcome on Done and writes the status file by
// Finish; the status already reads as the loop's. Run after it does not pass
// again at once but continues with the wait the prime scheduled: its first
// pass is at the next check (expiry 8 h minus the 4 h margin).
func TestStartPrimeThenFinish(t *testing.T) {
	c0 := newCred(0, loopStart.Add(8*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, nil)
	pr := r.w.StartPrime()
	<-pr.Done()
	if out, err := pr.Result(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("StartPrime: %v %v", out, err)
	}
	pr.Finish()
	pr.Finish() // a second call returns too
	st, err := ReadStatus(r.home)
	if err != nil || !st.WatchdogLoop || st.Credential != "ok" || st.NextCheckAt != loopStart.Add(4*time.Hour).Format(time.RFC3339) {
		t.Fatalf("status after Finish: %+v %v", st, err)
	}
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 1 })
	if got := offsets(r.postTimes(), loopStart); !equalDurs(got, []time.Duration{4 * time.Hour}) {
		t.Fatalf("POSTs at %v, want [4h]", got)
	}
	if n := strings.Count(r.log.String(), "no-op: credential fresh"); n != 1 {
		t.Fatalf("%d no-op passes, want only the prime's:\n%s", n, r.log.String())
	}
}

// Run right after StartPrime waits for the prime's pass itself (no Finish,
// no Done): the race detector sees no shared state touched by both.
func TestStartPrimeThenRunAtOnce(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	pr := r.w.StartPrime()
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if out, err := pr.Result(); out != OutcomeRefreshed || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	if n := len(r.postTimes()); n != 1 {
		t.Fatalf("%d POSTs in the first hour, want the prime's one", n)
	}
	if strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("the prime's own refresh taken for a rewrite:\n%s", r.log.String())
	}
}

// rewriteAfterLoad is a file store whose first Load is followed at once by
// a rewrite of auth.json, as if the CLI wrote while the pass was deciding.
type rewriteAfterLoad struct {
	Store
	once    sync.Once
	rewrite func()
}

func (s *rewriteAfterLoad) Load(ctx context.Context) (*AuthFile, error) {
	f, err := s.Store.Load(ctx)
	s.once.Do(s.rewrite)
	return f, err
}

// rigRewrittenDuringFirstLoad is a loop rig on a credential good for 20 h
// whose auth.json the CLI rewrites to c1 right after the first Load.
func rigRewrittenDuringFirstLoad(t *testing.T, c1 cred) *loopRig {
	t.Helper()
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	return newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) {
		c.PollInterval = 10 * time.Minute
		home := c.Home
		c.Store = &rewriteAfterLoad{Store: NewFileStore(c.Home), rewrite: func() {
			if err := cliRefresh(home, c1, loopStart); err != nil {
				t.Error(err)
			}
		}}
	})
}

// TestPrimeThenRunNoticesAChangeDuringThePrime: a rewrite of auth.json after
// the prime read it, while the prime was still deciding, is a change for
// Run's first poll; the prime's own verdict was made on the old file.
func TestPrimeThenRunNoticesAChangeDuringThePrime(t *testing.T) {
	c1 := newCred(1, loopStart.Add(50*time.Hour))
	r := rigRewrittenDuringFirstLoad(t, c1)
	if out, err := r.prime(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if !strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("rewrite during the prime not noticed:\n%s", r.log.String())
	}
	st, _ := ReadStatus(r.home)
	if st.AccessTokenExpiresAt != c1.Exp.Format(time.RFC3339) {
		t.Fatalf("status not re-decided from the new file: %+v", st)
	}
}

// TestPrimeRefreshIsNotAChangeForRun: the prime's own commit is not taken
// for someone else's rewrite at Run's first poll.
func TestPrimeRefreshIsNotAChangeForRun(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	if out, err := r.prime(); out != OutcomeRefreshed || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("the prime's own refresh taken for a rewrite:\n%s", r.log.String())
	}
	if n := len(r.postTimes()); n != 1 {
		t.Fatalf("%d POSTs, want the prime's one", n)
	}
}

// TestRunNoticesAChangeDuringAPass: the same for the loop's own passes: a
// rewrite after a pass read auth.json is a change for the wait that follows.
func TestRunNoticesAChangeDuringAPass(t *testing.T) {
	c1 := newCred(1, loopStart.Add(50*time.Hour))
	r := rigRewrittenDuringFirstLoad(t, c1)
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if !strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("rewrite during a pass not noticed:\n%s", r.log.String())
	}
	st, _ := ReadStatus(r.home)
	if st.AccessTokenExpiresAt != c1.Exp.Format(time.RFC3339) {
		t.Fatalf("status not re-decided from the new file: %+v", st)
	}
}
