package authwatch

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prime runs the prime pass to its end, status file included, before the
// test goes on: as a launcher whose child waits for the credential does.
func (r *loopRig) prime() (Outcome, error) {
	r.t.Helper()
	pr := r.w.startPrime()
	out, err := pr.result()
	pr.finish()
	return out, err
}

// result is the pass's outcome, as Pass would return it, once it is known.
func (p *primePass) result() (Outcome, error) {
	<-p.done
	return p.res.outcome, p.res.err
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

// startPrime gives the outcome on done and writes the status file by
// finish; the status already reads as the loop's. Run after it does not pass
// again at once but continues with the wait the prime scheduled: its first
// pass is at the next check (expiry 8 h minus the 4 h margin).
func TestStartPrimeThenFinish(t *testing.T) {
	c0 := newCred(0, loopStart.Add(8*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, nil)
	pr := r.w.startPrime()
	<-pr.done
	if out, err := pr.result(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("startPrime: %v %v", out, err)
	}
	pr.finish()
	pr.finish() // a second call returns too
	st, err := ReadStatus(r.home)
	if err != nil || !st.WatchdogLoop || st.Credential != "ok" || st.NextCheckAt != loopStart.Add(4*time.Hour).Format(time.RFC3339) {
		t.Fatalf("status after finish: %+v %v", st, err)
	}
	r.run(100*time.Hour, func(time.Time) bool { return len(r.postTimes()) >= 1 })
	if got := offsets(r.postTimes(), loopStart); !equalDurs(got, []time.Duration{4 * time.Hour}) {
		t.Fatalf("POSTs at %v, want [4h]", got)
	}
	if n := strings.Count(r.log.String(), "no-op: credential fresh"); n != 1 {
		t.Fatalf("%d no-op passes, want only the prime's:\n%s", n, r.log.String())
	}
}

// Run right after startPrime waits for the prime's pass itself (no finish,
// no done): the race detector sees no shared state touched by both.
func TestStartPrimeThenRunAtOnce(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	pr := r.w.startPrime()
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if out, err := pr.result(); out != OutcomeRefreshed || err != nil {
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
// Being no *FileStore, it stands for any other Store (the fleet's): the
// watchdog cannot see what its Load read of auth.json.
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

// cliRefreshTo returns a rewrite of auth.json to c, as the CLI makes it.
func cliRefreshTo(t *testing.T, h Home, c cred) func() {
	return func() {
		if err := cliRefresh(h, c, loopStart); err != nil {
			t.Error(err)
		}
	}
}

// rigRewrittenDuringFirstPass is a loop rig on a credential good for 20 h
// whose auth.json the CLI rewrites to c1 once the first pass has read it:
// right after Load for another store, and when the pass logs its verdict
// for the file store (whose read the watchdog makes itself).
func rigRewrittenDuringFirstPass(t *testing.T, c1 cred, otherStore bool) *loopRig {
	t.Helper()
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) {
		c.PollInterval = 10 * time.Minute
		if otherStore {
			c.Store = &rewriteAfterLoad{Store: NewFileStore(c.Home), rewrite: cliRefreshTo(t, c.Home, c1)}
		}
	})
	if !otherStore {
		var once sync.Once
		rewrite := cliRefreshTo(t, r.home, c1)
		r.log.onLine("no-op: credential fresh", func() { once.Do(rewrite) })
	}
	return r
}

// forEachStore runs f for the file store and for another store.
func forEachStore(t *testing.T, f func(t *testing.T, otherStore bool)) {
	t.Run("file", func(t *testing.T) { f(t, false) })
	t.Run("other", func(t *testing.T) { f(t, true) })
}

// TestPrimeThenRunWaitsOnTheFileThePrimeDecidedOn: auth.json rewritten just
// before the prime read it is the file the prime decides on, so it is no
// change for Run's wait: Run neither logs one nor passes again before the
// check the prime scheduled. A base read apart from the decision's read
// (before it) would take the rewrite for a change.
func TestPrimeThenRunWaitsOnTheFileThePrimeDecidedOn(t *testing.T) {
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	c1 := newCred(1, loopStart.Add(50*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) {
		c.PollInterval = 10 * time.Minute
		// A pass looks at the clock before it reads auth.json: the
		// rewrite comes first thing in the prime.
		now, rewrite := c.Now, cliRefreshTo(t, c.Home, c1)
		var once sync.Once
		c.Now = func() time.Time {
			once.Do(rewrite)
			return now()
		}
	})
	if out, err := r.prime(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	if st, _ := ReadStatus(r.home); st.AccessTokenExpiresAt != c1.Exp.Format(time.RFC3339) {
		t.Fatalf("the prime did not decide on the rewritten file (did the rewrite come after its read?): %+v", st)
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("the file the prime decided on taken for a change:\n%s", r.log.String())
	}
	if n := strings.Count(r.log.String(), "no-op: credential fresh"); n != 1 {
		t.Fatalf("%d no-op passes, want only the prime's:\n%s", n, r.log.String())
	}
}

// TestRunIgnoresARewriteOfTheSameBytes: auth.json replaced by a copy of the
// file the prime read (a new inode, the same credential) moves the stat but
// is no change: the wait compares the contents with the sum of that read.
func TestRunIgnoresARewriteOfTheSameBytes(t *testing.T) {
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	if out, err := r.prime(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	tmp := r.home.AuthPath() + ".copy"
	if err := os.WriteFile(tmp, readAuth(t, r.home), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.home.AuthPath()); err != nil {
		t.Fatal(err)
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
	if strings.Contains(r.log.String(), "auth.json changed") {
		t.Fatalf("a copy of the same bytes taken for a change:\n%s", r.log.String())
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

// TestRunNoticesAChangeDuringAPass: a rewrite of auth.json after a pass read
// it, while the pass was still deciding, is a change for the wait that
// follows, whether that pass was the prime (the change is then for Run's
// first poll) or one of the loop's own; the pass's verdict was made on the
// old file.
func TestRunNoticesAChangeDuringAPass(t *testing.T) {
	for _, prime := range []bool{true, false} {
		name := "loop pass"
		if prime {
			name = "prime"
		}
		t.Run(name, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, otherStore bool) {
				c1 := newCred(1, loopStart.Add(50*time.Hour))
				r := rigRewrittenDuringFirstPass(t, c1, otherStore)
				if prime {
					if out, err := r.prime(); out != OutcomeNothingToDo || err != nil {
						t.Fatalf("prime: %v %v", out, err)
					}
				}
				r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
				if !strings.Contains(r.log.String(), "auth.json changed") {
					t.Fatalf("rewrite during the %s not noticed:\n%s", name, r.log.String())
				}
				st, _ := ReadStatus(r.home)
				if st.AccessTokenExpiresAt != c1.Exp.Format(time.RFC3339) {
					t.Fatalf("status not re-decided from the new file: %+v", st)
				}
			})
		})
	}
}

// TestRunNoticesARewriteRightAfterItsRefresh: a new login, or a logout,
// written as soon as the loop's refresh has committed and let go of the
// locks (before the pass has even logged its result) is a change for the
// wait that follows. The base after a refresh is the file the pass wrote,
// not auth.json read again once the pass is over: that read would take the
// change in and sleep past it to the next check, 4 h away.
func TestRunNoticesARewriteRightAfterItsRefresh(t *testing.T) {
	c1 := newCred(1, loopStart.Add(50*time.Hour))
	for _, tc := range []struct {
		name    string
		rewrite func(t *testing.T, h Home) func()
		check   func(st Status) bool
	}{
		{"login", func(t *testing.T, h Home) func() { return cliRefreshTo(t, h, c1) },
			func(st Status) bool { return st.AccessTokenExpiresAt == c1.Exp.Format(time.RFC3339) }},
		{"logout", func(t *testing.T, h Home) func() {
			return func() {
				if err := os.Remove(h.AuthPath()); err != nil {
					t.Error(err)
				}
			}
		}, func(st Status) bool { return st.Credential == "absent" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c0 := newCred(0, loopStart.Add(time.Hour))
			r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
			var once sync.Once
			rewrite := tc.rewrite(t, r.home)
			r.log.onLine("refresh: ok", func() { once.Do(rewrite) })
			r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= time.Hour })
			if n := len(r.postTimes()); n != 1 {
				t.Fatalf("%d POSTs, want the one refresh", n)
			}
			if !strings.Contains(r.log.String(), "auth.json changed") {
				t.Fatalf("%s right after the refresh not noticed:\n%s", tc.name, r.log.String())
			}
			if st, err := ReadStatus(r.home); err != nil || !tc.check(st) {
				t.Fatalf("status not re-decided after the %s: %+v %v", tc.name, st, err)
			}
		})
	}
}

// opensOf counts the opens of one file from now on, through inotify: the
// only way to see a read the watchdog makes itself. Open and close events
// alternate, so the kernel never merges two opens into one event.
type opensOf struct {
	t  *testing.T
	fd int
}

func watchOpens(t *testing.T, path string) *opensOf {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_CLOSE_NOWRITE|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatalf("inotify watch: %v", err)
	}
	return &opensOf{t: t, fd: fd}
}

// count returns the opens since the last count.
func (o *opensOf) count() int {
	o.t.Helper()
	n := 0
	buf := make([]byte, 64*unix.SizeofInotifyEvent)
	for {
		m, err := unix.Read(o.fd, buf)
		if err == unix.EAGAIN {
			return n
		}
		if err != nil {
			o.t.Fatalf("inotify read: %v", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= m; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_OPEN != 0 {
				n++
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// TestLoopReadsAuthJSONOncePerPass: a pass reads auth.json once, and takes
// the version its wait compares against from that read; the waits between
// passes only stat the file while it does not change. Here the prime at 0
// and the loop's passes at 6 h and 12 h (the interval) find it fresh.
func TestLoopReadsAuthJSONOncePerPass(t *testing.T) {
	c0 := newCred(0, loopStart.Add(20*time.Hour))
	r := newLoopRig(t, c0.file(loopStart.Add(-time.Hour)), c0.Refresh, true, func(c *Config) { c.PollInterval = 10 * time.Minute })
	opens := watchOpens(t, r.home.AuthPath())
	if out, err := r.prime(); out != OutcomeNothingToDo || err != nil {
		t.Fatalf("prime: %v %v", out, err)
	}
	if n := opens.count(); n != 1 {
		t.Fatalf("the prime opened auth.json %d times, want once", n)
	}
	r.run(100*time.Hour, func(now time.Time) bool { return now.Sub(loopStart) >= 13*time.Hour })
	if n := strings.Count(r.log.String(), "no-op: credential fresh"); n != 3 {
		t.Fatalf("%d passes, want 3 (at 0, 6 h, 12 h):\n%s", n, r.log.String())
	}
	if n := opens.count(); n != 2 {
		t.Fatalf("the loop's 2 passes and their waits opened auth.json %d times, want 2", n)
	}
}
