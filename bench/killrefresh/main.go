// Command killrefresh measures what a SIGKILL at a random moment of
// `codex-launch refresh --once` costs: the fraction of kills after which the
// login is lost (the endpoint redeemed the refresh token in auth.json and
// no file in CODEX_HOME holds the answer), against a loopback token
// endpoint that answers after a fixed latency (tokenmock, in this process).
// It also measures the window no client can close: from the last byte of
// the endpoint's answer to the rename of auth.json (seen by inotify), over
// uninterrupted refreshes.
//
//	go run ./bench/killrefresh                          # 1000 kills, 1000 timed refreshes, 30 ms latency
//	go run ./bench/killrefresh -launcher /path/to/old/codex-launch -window 0
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// rescueName is the file codex-launch keeps an unwritten answer in.
const rescueName = ".codex-launch-rescue-auth.json"

func main() {
	kills := flag.Int("kills", 1000, "SIGKILLs at random moments")
	window := flag.Int("window", 1000, "uninterrupted refreshes timed for the answer-to-rename window (0: none)")
	latency := flag.Duration("latency", 30*time.Millisecond, "the endpoint's answer latency")
	launcher := flag.String("launcher", "", "a built codex-launch (default: build this tree's)")
	flag.Parse()
	if err := run(*kills, *window, *latency, *launcher); err != nil {
		fmt.Fprintln(os.Stderr, "killrefresh:", err)
		os.Exit(1)
	}
}

// rig is one CODEX_HOME, the mock, and a proxy in front of it that notes
// when each answer's last byte was written.
type rig struct {
	dir, launcher string
	srv           *tokenmock.Server
	proxyURL      string
	latency       time.Duration

	mu       sync.Mutex
	answered time.Time
}

func run(kills, window int, latency time.Duration, launcher string) error {
	work, err := os.MkdirTemp("", "killrefresh-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if launcher == "" {
		if launcher, err = testenv.BuildLauncher(work); err != nil {
			return err
		}
	}
	// Tokens expire as they are minted: every run finds the credential due.
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	defer srv.Close()
	r := &rig{dir: filepath.Join(work, "codex"), launcher: launcher, srv: srv, latency: latency}
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		return err
	}
	stop, err := r.proxy()
	if err != nil {
		return err
	}
	defer stop()
	if err := r.login(); err != nil {
		return err
	}
	fmt.Printf("killrefresh: %s, endpoint latency %s\n", launcher, latency)
	if window > 0 {
		if err := r.window(window); err != nil {
			return err
		}
	}
	if kills > 0 {
		return r.kills(kills)
	}
	return nil
}

// proxy serves the mock through a reverse proxy that flushes each answer
// and notes the moment its last byte was written.
func (r *rig) proxy() (func(), error) {
	u, err := url.Parse(r.srv.URL)
	if err != nil {
		return nil, err
	}
	u.Path = "" // the request carries the path
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a killed client's canceled request is expected
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rp.ServeHTTP(w, req)
		w.(http.Flusher).Flush()
		r.mu.Lock()
		r.answered = time.Now()
		r.mu.Unlock()
	})}
	ln, err := netListen()
	if err != nil {
		return nil, err
	}
	go hs.Serve(ln)
	r.proxyURL = "http://" + ln.Addr().String() + tokenmock.TokenPath
	return func() { hs.Close() }, nil
}

// login writes a fresh, due credential.
func (r *rig) login() error {
	c := r.srv.IssueWithExpiry("acct-k", time.Now().Add(-time.Minute))
	os.Remove(filepath.Join(r.dir, rescueName))
	return os.WriteFile(filepath.Join(r.dir, "auth.json"), r.srv.AuthJSON(c, time.Now().Add(-time.Hour)), 0o600)
}

// cmd is one refresh --once; viaProxy sends it through the proxy that
// notes the answer's last byte, else straight to the mock.
func (r *rig) cmd(viaProxy bool) *exec.Cmd {
	r.srv.Script(tokenmock.Answer{Delay: r.latency})
	endpoint := r.srv.URL
	if viaProxy {
		endpoint = r.proxyURL
	}
	cmd := exec.Command(r.launcher, "refresh", "--once")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(r.dir), "CODEX_HOME=" + r.dir, "NO_PROXY=*",
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + endpoint, "CODEX_AUTH_SAFETY_MARGIN_SECONDS=600",
		"CODEX_LAUNCH_RECHECK_WINDOW=0"}
	return cmd
}

// fileToken is the refresh token in the named file ("" when none).
func (r *rig) fileToken(name string) string {
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		return ""
	}
	var f struct {
		Tokens struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"tokens"`
	}
	_ = json.Unmarshal(b, &f)
	return f.Tokens.RefreshToken
}

// window times uninterrupted refreshes: last byte of the answer → the
// first rename after which a SIGKILL no longer loses it (auth.json, or the
// rescue file codex-launch stashes the answer in first), seen by inotify.
func (r *rig) window(n int) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, r.dir, unix.IN_MOVED_TO); err != nil {
		return err
	}
	var (
		evMu  sync.Mutex
		first time.Time // the run's first rename, zero until it comes
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := unix.Read(fd, buf)
			if err != nil || k <= 0 {
				return
			}
			at := time.Now()
			for off := 0; off+unix.SizeofInotifyEvent <= k; {
				ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
				name := string(trimNul(buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]))
				if name == "auth.json" || name == rescueName {
					evMu.Lock()
					if first.IsZero() {
						first = at
					}
					evMu.Unlock()
				}
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	var ws []time.Duration
	for i := 0; i < n; i++ {
		evMu.Lock()
		first = time.Time{}
		evMu.Unlock()
		cmd := r.cmd(true)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("refresh %d: %v: %s", i, err, out)
		}
		var at time.Time
		for wait := 0; at.IsZero() && wait < 5000; wait++ {
			evMu.Lock()
			at = first
			evMu.Unlock()
			if at.IsZero() {
				time.Sleep(time.Millisecond)
			}
		}
		if at.IsZero() {
			return fmt.Errorf("refresh %d: no rename seen", i)
		}
		r.mu.Lock()
		ws = append(ws, at.Sub(r.answered))
		r.mu.Unlock()
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	fmt.Printf("answer's last byte → first rename that keeps it (auth.json or the rescue file), %d refreshes: median %d µs, p99 %d µs, max %d µs\n",
		n, ws[n/2].Microseconds(), ws[n*99/100].Microseconds(), ws[n-1].Microseconds())
	return nil
}

// kills SIGKILLs refresh --once at uniform random moments of a typical
// run (plus a fifth) and counts the kills after which the login is lost.
func (r *rig) kills(n int) error {
	var typical time.Duration
	for range 5 {
		start := time.Now()
		if out, err := r.cmd(false).CombinedOutput(); err != nil {
			return fmt.Errorf("calibration: %v: %s", err, out)
		}
		typical = max(typical, time.Since(start))
	}
	spread := typical + typical/5
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	lost, rescued := 0, 0
	for i := 0; i < n; i++ {
		cmd := r.cmd(false)
		if err := cmd.Start(); err != nil {
			return err
		}
		time.Sleep(time.Duration(rng.Int64N(int64(spread))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		// Let the endpoint finish what it was doing (an abandoned answer
		// is not redeemed; one already past its latency is).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.srv.WaitIdle(ctx, 5*time.Millisecond)
		cancel()
		tok := r.fileToken("auth.json")
		if !r.srv.Spent(tok) {
			continue
		}
		latest, _ := r.srv.Latest("acct-k")
		if r.fileToken(rescueName) == latest.RefreshToken {
			rescued++ // the next run adopts it
			continue
		}
		lost++
		if err := r.login(); err != nil {
			return err
		}
	}
	fmt.Printf("%d SIGKILLs over %s (a run takes ~%s): %d lost the login (%.2f%%), %d left the answer in the rescue file\n",
		n, spread.Round(time.Millisecond), typical.Round(time.Millisecond), lost, 100*float64(lost)/float64(n), rescued)
	return nil
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
