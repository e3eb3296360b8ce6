package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// TestLauncherNoTokenInProcessesOrOutput runs a whole life cycle (seed from
// CODEX_AUTH_JSON, a refresh in the prime, more by the watchdog while the
// child runs) and looks for every token the mock minted in every process's
// argv and environment, in all output and in the status file. The only place
// a token may be is the variable CODEX_AUTH_JSON of the processes it was
// given to (unshare and codex-launch: /proc/PID/environ is the environment a
// process started with); the child must not have it at all.
func TestLauncherNoTokenInProcessesOrOutput(t *testing.T) {
	// Tokens live 3s and are refreshed 2s before they expire: the prime
	// refreshes, then the watchdog about once a second during the scan.
	l := newLaunch(t, tokenmock.Options{AccessTTL: 3 * time.Second})
	cred := l.Mock.IssueWithExpiry("acct-secret", time.Now().Add(time.Second))
	l.Env["CODEX_AUTH_JSON"] = string(testenv.AuthJSON(cred, time.Now().Add(-time.Hour)))
	l.Env["CODEX_AUTH_SAFETY_MARGIN_SECONDS"] = "2"
	l.Env["CODEX_AUTH_REFRESH_INTERVAL_SECONDS"] = "1"
	l.Child = []string{l.Script("child.sh", `echo ready > "$OUT/ready"
if env | grep -q '^CODEX_AUTH_JSON='; then echo present > "$OUT/authvar"; fi
while [ ! -f "$OUT/go" ]; do sleep 0.05; done
exit 0
`)}
	l.Start()
	l.WaitFile("ready", 20*time.Second)
	launcherPID := l.LauncherPID()

	scans := 0
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); scans++ {
		for _, pid := range descendants(l.Cmd.Process.Pid) {
			cmdline, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			environ, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err1 != nil || err2 != nil {
				continue // exited meanwhile
			}
			if leaks := l.Mock.Leaks(cmdline); len(leaks) > 0 {
				t.Errorf("argv of pid %d (%s) carries %v", pid, argv0(cmdline), leaks)
			}
			for _, kv := range bytes.Split(environ, []byte{0}) {
				leaks := l.Mock.Leaks(kv)
				if len(leaks) == 0 {
					continue
				}
				given := pid == l.Cmd.Process.Pid || pid == launcherPID
				if given && bytes.HasPrefix(kv, []byte("CODEX_AUTH_JSON=")) {
					continue
				}
				name, _, _ := bytes.Cut(kv, []byte("="))
				t.Errorf("environment variable %s of pid %d (%s) carries %v", name, pid, argv0(cmdline), leaks)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.Touch("go")
	if code := l.Wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
	}
	if l.OutFile("authvar") != "" {
		t.Error("CODEX_AUTH_JSON reached the child's environment")
	}
	latest, _ := l.Mock.Latest("acct-secret")
	if latest.Generation < 2 {
		t.Errorf("only %d refreshes during the run: the scan did not cover the watchdog at work", latest.Generation)
	}
	t.Logf("%d scans, %d refreshes", scans, latest.Generation)

	l.CheckNoLeak("codex-launch output", l.Output.Bytes())
	status, err := os.ReadFile(filepath.Join(l.CodexHome, "auth_refresh_status.json"))
	if err != nil {
		t.Fatal(err)
	}
	l.CheckNoLeak("status file", status)
	for _, args := range [][]string{{"status"}, {"status", "--json"}, {"health"}, {"refresh", "--once"}} {
		l.Command(nil, args...) // fails on a token in its output
	}
}

func argv0(cmdline []byte) string {
	a, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(a))
}
