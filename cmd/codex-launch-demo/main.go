// Command codex-launch-demo shows codex-launch's main job on any machine, with
// no OpenAI account: a credential about to expire is refreshed before the
// child starts, refreshed again by the watchdog while the child runs, and a
// SIGTERM stops everything cleanly.
//
//	go run ./cmd/codex-launch-demo
//
// It starts a loopback mock of the token endpoint (package tokenmock), writes
// an expiring auth.json into a temporary CODEX_HOME, builds codex-launch (or
// takes -launcher PATH), and runs it with this same program as the child,
// which prints what it sees: the access token's expiry in auth.json and the
// watchdog's status file, never a token. It exits 0 only when every step
// happened as it should.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// childArg makes this program act as the demo's child.
const childArg = "__demo-child"

// Timing of the demo: tokens live accessTTL; the watchdog refreshes within
// margin of expiry, so it refreshes every accessTTL-margin while the child runs.
const (
	accessTTL     = 12 * time.Second
	margin        = 8 * time.Second
	initialExpiry = 5 * time.Second // the credential on disk is already due
	stepTimeout   = 30 * time.Second
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(child())
	}
	launcher := flag.String("launcher", "", "path of a built codex-launch (default: go build it into a temporary directory)")
	keep := flag.Bool("keep", false, "keep the temporary directory for a look afterwards")
	flag.Parse()
	if err := demo(*launcher, *keep); err != nil {
		fmt.Printf("\nDEMO FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nDEMO OK: refreshed before the child started, refreshed again while it ran, stopped cleanly, no token in any output.")
}

// say prints one step of the demo for the person watching.
func say(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func demo(launcher string, keep bool) error {
	dir, err := os.MkdirTemp("", "codex-launch-demo-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Printf("\n(kept %s)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	srv := tokenmock.Start(tokenmock.Options{AccessTTL: accessTTL})
	defer srv.Close()
	say("A loopback token endpoint is listening at %s", srv.URL)
	fmt.Println("    It behaves like auth.openai.com for a refresh: single-use, rotating refresh tokens.")

	home := filepath.Join(dir, "codex-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	start := time.Now()
	cred := srv.IssueWithExpiry("demo-account", start.Add(initialExpiry))
	if err := os.WriteFile(filepath.Join(home, "auth.json"), srv.AuthJSON(cred, start.Add(-24*time.Hour)), 0o600); err != nil {
		return err
	}
	say("CODEX_HOME=%s holds an auth.json whose access token expires at %s (in %s)",
		home, clock(cred.AccessExpiry), time.Until(cred.AccessExpiry).Round(time.Second))
	fmt.Printf("    The safety margin is %s, so it is due for a refresh now; new tokens live %s.\n", margin, accessTTL)

	if launcher == "" {
		say("Building codex-launch")
		launcher = filepath.Join(dir, "codex-launch")
		build := exec.Command("go", "build", "-o", launcher, "github.com/molecule-ai/codex-launch/cmd/codex-launch")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build (run the demo from the repository, or pass -launcher PATH): %v\n%s", err, out)
		}
		fmt.Printf("    %s\n", launcher)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program for the child: %w", err)
	}

	argv := []string{launcher, "--safety-margin", margin.String(), "--stop-timeout", "3s", "--", self, childArg}
	say("Starting: codex-launch --safety-margin %s --stop-timeout 3s -- <this demo as the child>", margin)
	fmt.Println("    launcher lines are codex-launch's log (stderr); child lines are what the child prints.")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"CODEX_HOME=" + home,
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + srv.URL,
	}
	var out transcript
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start codex-launch: %w", err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); out.pump(stderr, "launcher") }()
	go func() { defer wg.Done(); out.pump(stdout, "child   ") }()
	go func() { wg.Wait(); exited <- cmd.Wait(); close(done) }()
	// Whatever happens, leave nothing running.
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
		}
	}()

	// 1. The child's first look at auth.json must already show new tokens.
	first, err := out.waitFor(`\[first exp=(\d+)\]`, stepTimeout)
	if err != nil {
		return fmt.Errorf("the child never reported auth.json: %w", err)
	}
	firstExp := unix(first[1])
	if !firstExp.After(cred.AccessExpiry) {
		return fmt.Errorf("the child started with the old access token (expires %s): no refresh before the child", clock(firstExp))
	}
	say("Checked: the child's first look shows an access token expiring at %s, later than the old %s:", clock(firstExp), clock(cred.AccessExpiry))
	fmt.Println("    the refresh happened before the child started.")

	// 2. The watchdog refreshes again while the child runs.
	say("Waiting for the watchdog to refresh again while the child runs (about %s)", (accessTTL - margin).Round(time.Second))
	changed, err := out.waitFor(`\[changed exp=(\d+)\]`, stepTimeout)
	if err != nil {
		return fmt.Errorf("the watchdog did not refresh while the child ran: %w", err)
	}
	if !unix(changed[1]).After(firstExp) {
		return fmt.Errorf("auth.json changed but its token is not newer")
	}
	if n := srv.Posts(); n < 2 {
		return fmt.Errorf("the token endpoint saw %d POSTs, want at least 2", n)
	}
	say("Checked: the child saw auth.json change to a token expiring at %s; the endpoint saw %d refreshes.", clock(unix(changed[1])), srv.Posts())

	// 3. docker stop: TERM to codex-launch; the child gets it and exits 0.
	say("Sending SIGTERM to codex-launch, as docker stop would")
	stopAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal codex-launch: %w", err)
	}
	select {
	case err := <-exited:
		<-done
		code := cmd.ProcessState.ExitCode()
		if err != nil && code != 0 {
			return fmt.Errorf("codex-launch exited %d after TERM, want the child's 0", code)
		}
		say("codex-launch exited %d, %s after the TERM, with the child's status", code, time.Since(stopAt).Round(time.Millisecond))
	case <-time.After(stepTimeout):
		return errors.New("codex-launch did not exit after SIGTERM")
	}
	if _, err := out.waitFor(`\[got TERM\]`, time.Second); err != nil {
		return errors.New("the child never got the TERM")
	}

	// 4. Nothing printed anywhere carries a token.
	if leaks := srv.Leaks(out.bytes()); len(leaks) > 0 {
		return fmt.Errorf("a token appeared in the output: %s", strings.Join(leaks, ", "))
	}
	status, err := os.ReadFile(filepath.Join(home, "auth_refresh_status.json"))
	if err != nil {
		return fmt.Errorf("status file: %w", err)
	}
	if leaks := srv.Leaks(status); len(leaks) > 0 {
		return fmt.Errorf("a token appeared in the status file: %s", strings.Join(leaks, ", "))
	}
	return nil
}

// child is the demo's child process: it reports auth.json's expiry at start
// and on every change, and the status file, until SIGTERM.
func child() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	home := os.Getenv("CODEX_HOME")
	authPath := filepath.Join(home, "auth.json")

	exp, err := accessExpiry(authPath)
	if err != nil {
		fmt.Printf("cannot read auth.json: %v\n", err)
		return 1
	}
	fmt.Printf("my first instruction: auth.json's access token expires at %s (in %s) [first exp=%d]\n",
		clock(exp), time.Until(exp).Round(time.Second), exp.Unix())
	// The launcher writes the prime's status file beside the child's start
	// (the child need not wait for it): give it a moment.
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(filepath.Join(home, "auth_refresh_status.json")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	printStatus(home)

	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-term:
			fmt.Println("got SIGTERM, exiting 0 [got TERM]")
			return 0
		case <-tick.C:
			now, err := accessExpiry(authPath)
			if err != nil || now.Equal(exp) {
				continue
			}
			exp = now
			fmt.Printf("auth.json changed under me: the access token now expires at %s (in %s) [changed exp=%d]\n",
				clock(exp), time.Until(exp).Round(time.Second), exp.Unix())
			printStatus(home)
		}
	}
}

// accessExpiry reads the exp claim of auth.json's access token.
func accessExpiry(path string) (time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	var f struct {
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return time.Time{}, fmt.Errorf("auth.json does not parse")
	}
	claims, err := tokenmock.DecodeClaims(f.Tokens.AccessToken)
	if err != nil {
		return time.Time{}, fmt.Errorf("access token is not a JWT")
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return time.Time{}, fmt.Errorf("access token has no exp")
	}
	return time.Unix(int64(exp), 0), nil
}

// printStatus shows the watchdog's status file as the child finds it: the
// fields a person looks at first (the file has more, never a token).
func printStatus(home string) {
	data, err := os.ReadFile(filepath.Join(home, "auth_refresh_status.json"))
	if err != nil {
		fmt.Printf("no status file yet: %v\n", err)
		return
	}
	var st map[string]any
	if err := json.Unmarshal(data, &st); err != nil {
		fmt.Printf("status file does not parse: %v\n", err)
		return
	}
	fmt.Println("the watchdog's status file (auth_refresh_status.json) says:")
	for _, k := range []string{"watchdog_last_outcome", "watchdog_last_run_iso", "credential", "access_token_expires_at",
		"next_check_at", "last_refresh", "consecutive_failures", "refresh_owner"} {
		if v, ok := st[k]; ok {
			fmt.Printf("  %-24s %v\n", k, v)
		}
	}
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05Z") }

func unix(s string) time.Time {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Unix(n, 0)
}

// transcript prints the launcher's output for the person watching and keeps
// it for the checks.
type transcript struct {
	mu      sync.Mutex
	all     bytes.Buffer
	changed chan struct{}
}

func (t *transcript) pump(r io.Reader, who string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Printf("    %s | %s\n", who, line)
		t.mu.Lock()
		t.all.WriteString(line + "\n")
		if t.changed != nil {
			close(t.changed)
			t.changed = nil
		}
		t.mu.Unlock()
	}
}

func (t *transcript) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.all.Bytes()...)
}

// waitFor waits until a line matching pattern has been printed and returns
// its submatches.
func (t *transcript) waitFor(pattern string, timeout time.Duration) ([]string, error) {
	re := regexp.MustCompile(pattern)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		t.mu.Lock()
		m := re.FindStringSubmatch(t.all.String())
		if m == nil && t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("nothing matching %s within %s", pattern, timeout)
		}
	}
}
