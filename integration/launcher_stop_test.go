package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// readyLoop is a child that says it is ready, then idles in short sleeps (so
// that a shell trap runs promptly).
func readyLoop(trap string) string {
	return trap + `
echo ready > "$OUT/ready"
while :; do sleep 0.05; done
`
}

func TestLauncherStopForwardsTerm(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	l.Child = []string{l.Script("child.sh", readyLoop(`trap 'echo term > "$OUT/term"; exit 7' TERM`))}
	l.Start()
	l.WaitFile("ready", 20*time.Second)
	l.Signal(syscall.SIGTERM)
	if code := l.Wait(10 * time.Second); code != 7 {
		t.Errorf("exit %d, want the child's 7; output:\n%s", code, l.Output.String())
	}
	if l.OutFile("term") == "" {
		t.Error("the child never got SIGTERM")
	}
}

func TestLauncherStopChildKilledByTerm(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	l.Child = []string{l.Script("child.sh", `echo ready > "$OUT/ready"
exec sleep 100
`)}
	l.Start()
	l.WaitFile("ready", 20*time.Second)
	time.Sleep(50 * time.Millisecond) // let the exec happen
	l.Signal(syscall.SIGTERM)
	if code := l.Wait(10 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want 143 (the child died of SIGTERM); output:\n%s", code, l.Output.String())
	}
}

func TestLauncherStopGraceThenKill(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	l.Args = []string{"--stop-timeout", "1s"}
	l.Child = []string{l.Script("child.sh", readyLoop(`trap 'echo term > "$OUT/term"' TERM`))}
	l.Start()
	l.WaitFile("ready", 20*time.Second)
	sent := time.Now()
	l.Signal(syscall.SIGTERM)
	code := l.Wait(15 * time.Second)
	took := l.Exited.Sub(sent)
	if code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit %d, want 137 (killed when the grace ended); output:\n%s", code, l.Output.String())
	}
	if l.OutFile("term") == "" {
		t.Error("the child never saw SIGTERM before the kill")
	}
	if took < 900*time.Millisecond || took > 8*time.Second {
		t.Errorf("killed %s after SIGTERM, want about the 1s grace", took)
	}
}

// TestLauncherTermDuringPrime: SIGTERM while the prime's POST is in flight.
// The server may already have redeemed the refresh token, so the answer is
// awaited (bounded by --refresh-timeout) and committed; then codex-launch
// exits at once with 128+15, without ever starting the child.
func TestLauncherTermDuringPrime(t *testing.T) {
	for _, answered := range []bool{true, false} {
		name := "answer arrives"
		if !answered {
			name = "no answer within the refresh timeout"
		}
		t.Run(name, func(t *testing.T) {
			l := newLaunch(t, tokenmock.Options{})
			old := l.Mock.IssueWithExpiry("acct-stop", time.Now().Add(time.Minute))
			before := testenv.AuthJSON(old, time.Now().Add(-time.Hour))
			l.WriteAuth(before)
			gate := l.Mock.Hold(1)
			defer gate.Release()
			l.Env["CODEX_LAUNCH_REFRESH_TIMEOUT"] = "2s"
			l.Child = []string{l.Script("child.sh", `echo started > "$OUT/started"
exit 0
`)}
			l.Start()
			select {
			case <-gate.Arrived():
			case <-time.After(20 * time.Second):
				t.Fatalf("the prime never POSTed; output:\n%s", l.Output.String())
			}
			l.Signal(syscall.SIGTERM)
			released := time.Now()
			if answered {
				time.Sleep(200 * time.Millisecond)
				released = time.Now()
				gate.Release()
			}
			code := l.Wait(15 * time.Second)
			bound := time.Second // after the answer: commit and exit
			if !answered {
				bound = 2*time.Second + time.Second // the refresh timeout, then exit
			}
			if took := l.Exited.Sub(released); took > bound+time.Second {
				t.Errorf("codex-launch took %s to stop, want at most about %s", took, bound)
			}
			if code != 128+int(syscall.SIGTERM) {
				t.Errorf("exit %d, want 143; output:\n%s", code, l.Output.String())
			}
			if l.OutFile("started") != "" {
				t.Error("the child was started after SIGTERM")
			}
			after := l.ReadAuth()
			latest, _ := l.Mock.Latest("acct-stop")
			switch {
			case answered && !testenv.Holds(after, latest):
				t.Error("the redeemed token's answer was not committed before exit")
			case !answered && !bytes.Equal(after, before) && !testenv.Holds(after, latest):
				t.Error("auth.json is neither the old credential nor the new one")
			}
			entries, _ := os.ReadDir(l.CodexHome)
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".tmp") || strings.Contains(e.Name(), ".tmp.") {
					t.Errorf("half-written file left: %s", filepath.Join(l.CodexHome, e.Name()))
				}
			}
		})
	}
}

// TestLauncherTermDuringBoot: SIGTERM while boot waits for the CLI's
// auth.lock (held here, as a running CLI would) to seed auth.json: codex-launch
// ends at once, no POST, no child, auth.json untouched.
func TestLauncherTermDuringBoot(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	old := l.Mock.IssueWithExpiry("acct-boot", time.Now().Add(time.Minute))
	before := testenv.AuthJSON(old, time.Now().Add(-time.Hour))
	l.WriteAuth(before)
	lock, err := os.OpenFile(filepath.Join(l.CodexHome, "auth.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	newer := l.Mock.IssueWithExpiry("acct-boot", time.Now().Add(2*time.Minute))
	l.Env["CODEX_AUTH_JSON"] = string(testenv.AuthJSON(newer, time.Now()))
	l.Child = []string{l.Script("child.sh", `echo started > "$OUT/started"`)}
	l.Start()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(l.Output.String(), "CODEX_HOME prepared") {
		if time.Now().After(deadline) {
			t.Fatalf("boot never reached the seeding step; output:\n%s", l.Output.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // now waiting for auth.lock
	sent := time.Now()
	l.Signal(syscall.SIGTERM)
	code := l.Wait(15 * time.Second)
	if took := l.Exited.Sub(sent); took > 2*time.Second {
		t.Errorf("codex-launch took %s to stop during boot", took)
	}
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want 143; output:\n%s", code, l.Output.String())
	}
	if l.OutFile("started") != "" {
		t.Error("the child was started")
	}
	if n := l.Mock.Posts(); n != 0 {
		t.Errorf("%d POSTs after a stop signal during boot", n)
	}
	if !bytes.Equal(l.ReadAuth(), before) {
		t.Error("auth.json changed")
	}
}
