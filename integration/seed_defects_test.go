package integration

// One test per defect the seed watchdog is known to have. Each runs the same
// probe against the seed script and against codex-launch, and asserts that
// the seed shows the defect (so the probe really detects it) and that
// codex-launch does not. Three defects are part of the parity table instead
// (seed_parity_test.go): 400 invalid_grant treated as transient, a file
// without auth_mode skipped, auth_mode lower-cased.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// program is the subject of a probe: the seed or codex-launch.
type program struct {
	name string
	seed bool
}

var bothPrograms = []program{{"seed", true}, {"codex-launch", false}}

// forBoth runs probe against each program in parallel. probe reports whether
// the program showed the defect, and what it saw. The seed must show it;
// codex-launch must not.
func forBoth(t *testing.T, probe func(t *testing.T, h *home, p program) (bool, string)) {
	t.Helper()
	for _, p := range bothPrograms {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			if p.seed {
				seedScript(t)
				seedPath(t)
			}
			srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
			defer srv.Close()
			h := newHome(t, srv)
			shows, detail := probe(t, h, p)
			switch {
			case p.seed && !shows:
				t.Errorf("the seed did not show the defect, so this probe cannot catch it: %s", detail)
			case !p.seed && shows:
				t.Errorf("codex-launch shows the seed's defect: %s", detail)
			default:
				t.Logf("%s: %s", p.name, detail)
			}
		})
	}
}

// command prepares `refresh --once` (or the seed's --once) in h.
func (h *home) command(ctx context.Context, p program, args ...string) *exec.Cmd {
	if p.seed {
		return h.seedCmd(ctx, args...)
	}
	return h.launcherCmd(ctx, append([]string{"refresh"}, args...)...)
}

// straced wraps cmd in strace -f with the given strace options, writing the
// trace to a file whose path it returns.
func straced(t *testing.T, cmd *exec.Cmd, opts ...string) string {
	t.Helper()
	strace := testenv.RequireCommand(t, "strace", "strace")
	out := filepath.Join(t.TempDir(), "trace")
	args := append([]string{"-f", "-qq", "-o", out}, opts...)
	args = append(args, "--", cmd.Path)
	cmd.Args = append([]string{strace}, append(args, cmd.Args[1:]...)...)
	cmd.Path = strace
	return out
}

// TestSeedDefectTokenInArgv: the seed hands the refresh token to `python3 -c`
// as an argument, where every process can read it in /proc/PID/cmdline.
// codex-launch refreshes in-process: no helper process, no token in any argv
// or environment. Two probes: every execve the program makes (strace), and
// a sampler that reads the cmdline and environ of every process on the
// machine while the program runs, its POST held open by the mock.
func TestSeedDefectTokenInArgv(t *testing.T) {
	t.Parallel()
	forBoth(t, func(t *testing.T, h *home, p program) (bool, string) {
		c := h.expired("acct-1")
		gate := h.Srv.Hold(1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := h.command(ctx, p, "--once")
		trace := straced(t, cmd, "-e", "trace=execve", "-s", "65536")

		stop := make(chan struct{})
		var sampled sync.WaitGroup
		var seen atomic.Value // string: where the token was seen
		var scans atomic.Int64
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if where := scanProcs(c.RefreshToken); where != "" {
					seen.CompareAndSwap(nil, where)
				}
				scans.Add(1)
			}
		}()
		go func() {
			select {
			case <-gate.Arrived():
				time.Sleep(300 * time.Millisecond) // sample with the POST in flight
			case <-ctx.Done():
			}
			gate.Release()
		}()
		r := finish(t, cmd)
		close(stop)
		sampled.Wait()

		tr, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		execs := 0
		inArgv := false
		for _, line := range strings.Split(string(tr), "\n") {
			if strings.Contains(line, "execve(") && !strings.Contains(line, "ENOENT") {
				execs++
				if strings.Contains(line, c.RefreshToken) {
					inArgv = true
				}
			}
		}
		if !p.seed {
			if r.Code != exitRefreshed {
				t.Errorf("codex-launch exited %d, want 0: %s", r.Code, lines(r.output()))
			}
			if execs != 1 {
				t.Errorf("codex-launch executed %d programs, want only itself (no helper process)", execs)
			}
			h.noLeak("output", []byte(r.output()))
		}
		where, _ := seen.Load().(string)
		detail := fmt.Sprintf("%d execve, token in an execve argv: %v; %d /proc scans, token seen in %q",
			execs, inArgv, scans.Load(), where)
		return inArgv || where != "", detail
	})
}

// scanProcs looks for secret in the cmdline and environ of every process and
// says where it found it ("" when nowhere).
func scanProcs(secret string) string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	needle := []byte(secret)
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), f))
			if err == nil && bytes.Contains(b, needle) {
				comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
				return fmt.Sprintf("/proc/%s/%s (%s)", e.Name(), f, strings.TrimSpace(string(comm)))
			}
		}
	}
	return ""
}

// TestSeedDefectTracebackWithoutCodexHome: with CODEX_HOME missing the seed's
// status writer dies with a Python traceback; codex-launch skips cleanly.
func TestSeedDefectTracebackWithoutCodexHome(t *testing.T) {
	t.Parallel()
	forBoth(t, func(t *testing.T, h *home, p program) (bool, string) {
		h.Env["CODEX_HOME"] = filepath.Join(h.Dir, "does", "not", "exist")
		var r run
		if p.seed {
			r = h.seedOnce()
		} else {
			r = h.once()
		}
		if r.Code != exitNothing {
			t.Errorf("%s exited %d, want 1 (nothing to do)", p.name, r.Code)
		}
		if _, err := os.Stat(h.Env["CODEX_HOME"]); !p.seed && err == nil {
			t.Errorf("codex-launch created the missing CODEX_HOME")
		}
		tb := traceback.MatchString(r.output())
		return tb, fmt.Sprintf("exit %d, traceback %v: %s", r.Code, tb, lines(string(r.Stderr)))
	})
}

// cliWriter follows the Codex CLI's lock protocol to rewrite auth.json:
// flock auth.lock (blocking), re-read, flock auth.json.lock (non-blocking,
// retried every 10 ms for 5 s), re-read, write a temporary file (0600,
// O_EXCL), fsync, rename. mutate turns the bytes of the last read into the
// bytes it writes. Optional hooks: locked is closed once auth.lock is held;
// pause is spent holding auth.lock; beforeRename runs with both locks held,
// after the last read.
type cliWriter struct {
	dir          string
	mutate       func([]byte) []byte
	locked       chan<- struct{}
	pause        time.Duration
	beforeRename func()
}

func (w cliWriter) write() error {
	lock, err := os.OpenFile(filepath.Join(w.dir, "auth.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("flock auth.lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if w.locked != nil {
		close(w.locked)
	}
	time.Sleep(w.pause)
	path := filepath.Join(w.dir, "auth.json")
	if _, err := os.ReadFile(path); err != nil {
		return err
	}
	jl, err := os.OpenFile(filepath.Join(w.dir, "auth.json.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer jl.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Flock(int(jl.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return fmt.Errorf("flock auth.json.lock: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer unix.Flock(int(jl.Fd()), unix.LOCK_UN)
	cur, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tmp := filepath.Join(w.dir, fmt.Sprintf(".auth.json.cli-%d.tmp", time.Now().UnixNano()))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(w.mutate(cur)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if w.beforeRename != nil {
		w.beforeRename()
	}
	return os.Rename(tmp, path)
}

var writerSeq = regexp.MustCompile(`,\n  "x_cli_writer_seq": \d+`)

// withWriterSeq sets the top-level key x_cli_writer_seq to n (a key the CLI
// of a newer version might write; codex-launch keeps unknown keys).
func withWriterSeq(n int) func([]byte) []byte {
	return func(b []byte) []byte {
		b = writerSeq.ReplaceAll(b, nil)
		i := bytes.LastIndex(b, []byte("\n}"))
		if i < 0 {
			return b
		}
		return append(append(append([]byte{}, b[:i]...), fmt.Sprintf(",\n  \"x_cli_writer_seq\": %d", n)...), b[i:]...)
	}
}

// TestSeedDefectNoLockLostUpdate: a writer that follows the CLI's lock
// protocol rewrites auth.json while the refresher's POST is in flight, and
// commits just after the refresher would. The seed takes no lock, so the
// writer, which read the file before the seed's commit, writes the old
// (now spent) credential back over the refreshed one: the refresh is lost
// and the login dead. codex-launch holds auth.lock from read to commit: the
// writer waits, then reads the refreshed file, and both updates survive.
func TestSeedDefectNoLockLostUpdate(t *testing.T) {
	t.Parallel()
	forBoth(t, func(t *testing.T, h *home, p program) (bool, string) {
		h.expired("acct-1")
		gate := h.Srv.Hold(1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := h.command(ctx, p, "--once")
		var r run
		exited := make(chan struct{})
		go func() { defer close(exited); r = finish(t, cmd) }()
		select {
		case <-gate.Arrived():
		case <-ctx.Done():
			t.Fatal("no POST arrived")
		}
		locked := make(chan struct{})
		writerDone := make(chan error, 1)
		go func() {
			writerDone <- cliWriter{dir: h.Dir, mutate: withWriterSeq(1), locked: locked, beforeRename: func() {
				// Let the refresher finish while this writer holds the
				// CLI's locks with what it read: a refresher that honours
				// them cannot commit now.
				gate.Release()
				select {
				case <-exited:
				case <-time.After(2 * time.Second):
				}
			}}.write()
		}()
		blocked := false
		select {
		case <-locked:
		case <-time.After(300 * time.Millisecond):
			blocked = true // the refresher holds auth.lock across its POST
		}
		gate.Release()
		<-exited
		if err := <-writerDone; err != nil {
			t.Fatalf("CLI writer: %v", err)
		}
		if !p.seed {
			if !blocked {
				t.Errorf("the CLI writer was not kept out while codex-launch's POST was in flight")
			}
			if r.Code != exitRefreshed {
				t.Errorf("codex-launch exited %d: %s", r.Code, lines(r.output()))
			}
		}
		final := h.read()
		latest, _ := h.Srv.Latest("acct-1")
		got, ok := fileTokens(final)
		keptRefresh := ok && sameTokens(got, latest)
		keptWriter := bytes.Contains(final, []byte(`"x_cli_writer_seq": 1`))
		return !keptRefresh || !keptWriter, fmt.Sprintf("exit %d, writer blocked %v, refreshed credential kept %v, writer's update kept %v",
			r.Code, blocked, keptRefresh, keptWriter)
	})
}

// TestSeedDefectNoReRead: the CLI (following its lock protocol) is installing
// a new login when the refresher starts. The seed reads the old file without
// waiting and spends its refresh token; codex-launch waits for auth.lock,
// re-reads, finds a fresh credential and POSTs nothing.
func TestSeedDefectNoReRead(t *testing.T) {
	t.Parallel()
	forBoth(t, func(t *testing.T, h *home, p program) (bool, string) {
		old := h.expired("acct-1")
		relogin := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(10*time.Hour))
		locked := make(chan struct{})
		writerDone := make(chan error, 1)
		go func() {
			writerDone <- cliWriter{dir: h.Dir, locked: locked, pause: 500 * time.Millisecond,
				mutate: func([]byte) []byte { return h.Srv.AuthJSON(relogin, time.Now()) }}.write()
		}()
		<-locked
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r := finish(t, h.command(ctx, p, "--once"))
		if err := <-writerDone; err != nil {
			t.Fatalf("CLI writer: %v", err)
		}
		spent := h.Srv.PostsFor(old.RefreshToken)
		if !p.seed {
			if r.Code != exitNothing {
				t.Errorf("codex-launch exited %d, want 1 (the re-read file is fresh): %s", r.Code, lines(r.output()))
			}
			h.wantTokens(relogin, "after the CLI's new login")
		}
		return spent > 0, fmt.Sprintf("exit %d, POSTs of the replaced refresh token: %d", r.Code, spent)
	})
}

// TestSeedDefectSleepsIntervalAfterTransient runs watchdog loops side by side
// (one 6 s window for all; each with a 1 h interval and its own endpoint;
// codex-launch with a 2 s minimum backoff and auth.json polled every 200 ms):
//   - seed defect: after a transient failure (a 503) the seed sleeps a whole
//     interval (6 h by default) before it tries again: no retry in the window;
//   - codex-launch retries the 503 after its backoff (seconds, not sooner),
//     and the retry refreshes auth.json;
//   - codex-launch after a permanent answer (401) stops spending the dead
//     token, then refreshes the new credential as soon as someone logs in
//     again (auth.json rewritten under the CLI's lock protocol);
//   - codex-launch with tokens that live shorter than the safety margin
//     (1 h against the default 4 h) refreshes once, not back to back.
func TestSeedDefectSleepsIntervalAfterTransient(t *testing.T) {
	t.Parallel()
	const (
		window     = 6 * time.Second
		minBackoff = 2 * time.Second
		deadWait   = 1500 * time.Millisecond // after the credential is declared dead, before the new login
	)
	type loop struct {
		name string
		seed bool
		h    *home
		cmd  *exec.Cmd
		out  *bytes.Buffer
	}
	ctx, cancel := context.WithTimeout(context.Background(), window+20*time.Second)
	defer cancel()
	start := func(name string, seed bool, first *tokenmock.Answer, env map[string]string) *loop {
		srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
		t.Cleanup(srv.Close)
		h := newHome(t, srv)
		h.expired("acct-1")
		if first != nil {
			srv.Script(*first)
		}
		h.Env["CODEX_AUTH_REFRESH_INTERVAL_SECONDS"] = "3600"
		h.Env["CODEX_LAUNCH_MIN_BACKOFF"] = minBackoff.String()
		h.Env["CODEX_LAUNCH_POLL_INTERVAL"] = "200ms"
		for k, v := range env {
			h.Env[k] = v
		}
		l := &loop{name: name, seed: seed, h: h, out: &bytes.Buffer{}}
		if seed {
			l.cmd = h.seedCmd(ctx)
		} else {
			l.cmd = h.launcherCmd(ctx, "refresh")
		}
		l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
		if err := l.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
			_ = l.cmd.Wait()
		})
		return l
	}
	e503, e401 := tokenmock.Error(503, "unavailable"), tokenmock.Error(401, "refresh_token_expired")
	// Skipped (under CI: failed) with the reason when the seed cannot run.
	seedLoop := start("seed", true, &e503, nil)
	transient := start("codex-launch 503", false, &e503, nil)
	dead := start("codex-launch 401", false, &e401, nil)
	// The default 4 h margin with tokens that live 1 h: every new token is
	// "due" at once; the loop must not refresh back to back.
	short := start("codex-launch short-lived tokens", false, nil, map[string]string{"CODEX_AUTH_SAFETY_MARGIN_SECONDS": unset})
	began := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, window)
	defer wcancel()

	// Watch for second POSTs while the dead-token scenario runs below.
	second := func(l *loop) chan time.Duration {
		ch := make(chan time.Duration, 1)
		go func() {
			if l.h.Srv.WaitPosts(wctx, 2) == nil {
				ch <- time.Since(began)
			}
			close(ch)
		}()
		return ch
	}
	seedRetry := second(seedLoop)
	transientRetry := second(transient)

	// The dead credential: one POST, then silence until a new login.
	var deadPostsBeforeLogin int
	var deadStatus map[string]any
	relogin := dead.h.Srv.IssueWithExpiry("acct-1", time.Now().Add(-time.Minute))
	for deadStatus == nil || deadStatus["credential"] != "dead" {
		if wctx.Err() != nil || time.Since(began) > window/2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
		deadStatus = dead.h.status()
	}
	select { // the dead token must stay unspent meanwhile
	case <-time.After(deadWait):
	case <-wctx.Done():
	}
	deadPostsBeforeLogin = dead.h.Srv.Posts()
	if err := (cliWriter{dir: dead.h.Dir, mutate: func([]byte) []byte { return dead.h.Srv.AuthJSON(relogin, time.Now()) }}).write(); err != nil {
		t.Fatalf("new login: %v", err)
	}
	loginAt := time.Since(began)
	deadRetry := second(dead)

	t.Run("seed sleeps a whole interval after a transient failure", func(t *testing.T) {
		if took, ok := <-seedRetry; ok {
			t.Errorf("the seed retried after %s: the probe cannot catch the defect", took)
		}
	})
	t.Run("codex-launch retries a transient failure within seconds", func(t *testing.T) {
		took, ok := <-transientRetry
		if !ok {
			t.Fatalf("no retry within %s", window)
		}
		t.Logf("retried after %s (minimum backoff %s)", took.Round(time.Millisecond), minBackoff)
		if took < minBackoff*3/4 {
			t.Errorf("retried after %s: sooner than the %s backoff", took, minBackoff)
		}
		waitForTokens(t, transient.h)
	})
	t.Run("codex-launch stops spending a dead token until a new login", func(t *testing.T) {
		if deadPostsBeforeLogin != 1 {
			t.Errorf("%d POSTs in the %s after a 401, want 1", deadPostsBeforeLogin, loginAt.Round(time.Millisecond))
		}
		if deadStatus == nil || deadStatus["credential"] != "dead" || deadStatus["last_error_class"] != "permanent" {
			t.Errorf("status after the 401: credential %v, last_error_class %v; want dead, permanent",
				deadStatus["credential"], deadStatus["last_error_class"])
		}
		took, ok := <-deadRetry
		if !ok {
			t.Fatalf("the new login (at %s) was not refreshed within %s", loginAt.Round(time.Millisecond), window)
		}
		t.Logf("new login at %s refreshed at %s", loginAt.Round(time.Millisecond), took.Round(time.Millisecond))
		waitForTokens(t, dead.h)
		if n := dead.h.Srv.PostsFor(relogin.RefreshToken); n != 1 {
			t.Errorf("the new login's refresh token was POSTed %d times, want 1", n)
		}
	})
	t.Run("codex-launch does not refresh back to back when tokens live shorter than the margin", func(t *testing.T) {
		<-wctx.Done()
		if n := short.h.Srv.Posts(); n != 1 {
			t.Errorf("%d POSTs in %s with 1 h tokens and the default 4 h margin, want 1", n, window)
		}
		waitForTokens(t, short.h)
	})
	for _, l := range []*loop{transient, dead, short} {
		_ = syscall.Kill(l.cmd.Process.Pid, syscall.SIGTERM)
		_ = l.cmd.Wait()
		l.h.t = t
		l.h.noLeak(l.name+" loop output", l.out.Bytes())
		l.h.noLeakStatus()
		if code := l.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s: refresh loop exited %d on SIGTERM, want 0", l.name, code)
		}
	}
}

// waitForTokens waits (a few seconds at most) until auth.json holds the
// mock's newest credential.
func waitForTokens(t *testing.T, h *home) {
	t.Helper()
	h.t = t
	latest, _ := h.Srv.Latest("acct-1")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := fileTokens(h.read())
		if ok && sameTokens(got, latest) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("auth.json does not hold the newest credential (generation %d)", latest.Generation)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSeedDefectNoDirectoryFsync: after renaming the new auth.json into
// place, the directory must be fsynced, or a power loss can bring back the
// old (already spent) credential. strace shows every fsync with the path of
// its file descriptor.
func TestSeedDefectNoDirectoryFsync(t *testing.T) {
	t.Parallel()
	forBoth(t, func(t *testing.T, h *home, p program) (bool, string) {
		h.expired("acct-1")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := h.command(ctx, p, "--once")
		trace := straced(t, cmd, "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2")
		r := finish(t, cmd)
		if r.Code != exitRefreshed {
			t.Errorf("%s exited %d, want 0: %s", p.name, r.Code, lines(r.output()))
		}
		f, err := os.Open(trace)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		renamed, dirSynced, fileSynced := false, false, false
		// With several threads strace splits a call into "<unfinished ...>"
		// and "<... resumed>" lines: match the call's first half, which
		// carries the arguments.
		dirFD := regexp.MustCompile(`^\d+\s+f(data)?sync\(\d+<` + regexp.QuoteMeta(h.Dir) + `>`)
		anyFD := regexp.MustCompile(`^\d+\s+f(data)?sync\(\d+<` + regexp.QuoteMeta(h.Dir) + `/[^>]+>`)
		// A rename by path, or one relative to CODEX_HOME's descriptor.
		toAuth := regexp.MustCompile(`rename\w*\(.*("` + regexp.QuoteMeta(filepath.Join(h.Dir, "auth.json")) + `"|<` + regexp.QuoteMeta(h.Dir) + `>, "auth\.json")`)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case toAuth.MatchString(line):
				renamed = true
			case !renamed && anyFD.MatchString(line):
				fileSynced = true
			case renamed && dirFD.MatchString(line):
				dirSynced = true
			}
		}
		if !renamed {
			t.Fatalf("%s: no rename onto auth.json in the trace", p.name)
		}
		if !p.seed && !fileSynced {
			t.Errorf("codex-launch did not fsync the new file before the rename")
		}
		return !dirSynced, fmt.Sprintf("file fsynced before rename %v, directory fsynced after rename %v", fileSynced, dirSynced)
	})
}
