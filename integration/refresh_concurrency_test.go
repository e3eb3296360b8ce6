package integration

// Refreshers racing each other and the CLI on one auth.json: a refresh token
// is redeemed at most once per generation and no update is lost.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// TestRefreshEightAtOnce: eight `refresh --once` processes started together
// on one expired file. The first POST is held until all eight run, so the
// others meet it mid-flight: exactly one POST, every process exits 0 or 1,
// the file holds the new tokens.
func TestRefreshEightAtOnce(t *testing.T) {
	t.Parallel()
	const n = 8
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	defer srv.Close()
	h := newHome(t, srv)
	h.expired("acct-1")
	gate := srv.Hold(1)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	cmds := make([]runner, n)
	for i := range cmds {
		cmds[i] = startRunner(t, h.launcherCmd(ctx, "refresh", "--once"))
	}
	select {
	case <-gate.Arrived():
	case <-ctx.Done():
		t.Fatal("no POST arrived")
	}
	time.Sleep(300 * time.Millisecond) // the other seven reach the lock
	gate.Release()

	codes := map[int]int{}
	for _, c := range cmds {
		r := c.wait()
		codes[r.Code]++
		h.noLeak("refresh --once output", []byte(r.output()))
		if r.Code != exitRefreshed && r.Code != exitNothing {
			t.Errorf("a racer exited %d; output:\n%s", r.Code, lines(r.output()))
		}
	}
	if srv.Posts() != 1 {
		t.Errorf("%d POSTs, want exactly 1", srv.Posts())
	}
	if codes[exitRefreshed] != 1 {
		t.Errorf("exit codes %v, want exactly one 0", codes)
	}
	latest, _ := srv.Latest("acct-1")
	if latest.Generation != 1 {
		t.Errorf("mock is at generation %d, want 1", latest.Generation)
	}
	h.wantTokens(latest, "after the race")
	h.noLeakStatus()
}

// runner is a started process whose result can be collected later.
type runner struct {
	t    testing.TB
	done chan run
}

func startRunner(t testing.TB, cmd *exec.Cmd) runner {
	t.Helper()
	r := runner{t: t, done: make(chan run, 1)}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		r.done <- run{Code: cmd.ProcessState.ExitCode(), Stdout: out.Bytes(), Stderr: errb.Bytes(), Wall: time.Since(start)}
	}()
	return r
}

func (r runner) wait() run { return <-r.done }

var seqRe = regexp.MustCompile(`"x_cli_writer_seq": (\d+)`)

// TestRefreshRacesCLIWriter: a writer following the CLI's lock protocol
// increments a key of auth.json over and over while `refresh --once` runs
// again and again on a credential that is always due. Neither side may lose
// the other's update: at the end the file holds the mock's newest
// generation (every refresh committed, none undone) and the writer's last
// count (every increment kept).
func TestRefreshRacesCLIWriter(t *testing.T) {
	t.Parallel()
	// Every token the mock mints has expired already: always due.
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	defer srv.Close()
	h := newHome(t, srv)
	h.expired("acct-1")

	const writes, refreshes = 25, 8
	var wg sync.WaitGroup
	wg.Add(1)
	writerErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		for i := 1; i <= writes; i++ {
			err := cliWriter{dir: h.Dir, mutate: func(b []byte) []byte {
				n := 0
				if m := seqRe.FindSubmatch(b); m != nil {
					n, _ = strconv.Atoi(string(m[1]))
				}
				return withWriterSeq(n + 1)(b)
			}}.write()
			if err != nil {
				writerErr <- fmt.Errorf("write %d: %w", i, err)
				return
			}
			time.Sleep(time.Duration(i%4) * 5 * time.Millisecond)
		}
	}()
	for i := 0; i < refreshes; i++ {
		if r := h.once(); r.Code != exitRefreshed {
			t.Errorf("refresh %d exited %d; output:\n%s", i, r.Code, lines(r.output()))
		}
	}
	wg.Wait()
	select {
	case err := <-writerErr:
		t.Fatalf("CLI writer: %v", err)
	default:
	}
	final := h.read()
	latest, _ := srv.Latest("acct-1")
	if latest.Generation != refreshes {
		t.Errorf("mock at generation %d, want %d", latest.Generation, refreshes)
	}
	h.wantTokens(latest, "after the race")
	m := seqRe.FindSubmatch(final)
	if m == nil || string(m[1]) != strconv.Itoa(writes) {
		t.Errorf("writer's count in the file = %s, want %d (an update was lost)", m, writes)
	}
	if srv.Posts() != refreshes {
		t.Errorf("%d POSTs for %d refreshes", srv.Posts(), refreshes)
	}
	for _, q := range srv.Requests() {
		if q.Outcome != "refreshed" {
			t.Errorf("a POST got %q: a spent token was sent", q.Outcome)
		}
	}
}
