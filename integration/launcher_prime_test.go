package integration

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// firstLook is a child whose very first instruction saves the auth.json it
// finds: what the CLI's first turn would read.
const firstLook = `cp "$CODEX_HOME/auth.json" "$OUT/first.json" || exit 90
exit 0
`

func TestLauncherPrimeRefreshesBeforeFirstTurn(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{AccessTTL: 24 * time.Hour})
	// Expires in 1h: inside the default 4h safety margin.
	old := l.Mock.IssueWithExpiry("acct-prime", time.Now().Add(time.Hour))
	l.WriteAuth(testenv.AuthJSON(old, time.Now().Add(-23*time.Hour)))
	l.Child = []string{l.Script("child.sh", firstLook)}

	if code := l.Run(30 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0; output:\n%s", code, l.Output.String())
	}
	first := []byte(l.OutFile("first.json"))
	latest, _ := l.Mock.Latest("acct-prime")
	if latest.Generation != 1 || !testenv.Holds(first, latest) {
		t.Errorf("the child's first look found generation-%d tokens? holds latest=%v, holds old=%v; want the refreshed ones",
			latest.Generation, testenv.Holds(first, latest), testenv.Holds(first, old))
	}
	if n := l.Mock.Posts(); n != 1 {
		t.Errorf("%d POSTs, want exactly 1", n)
	}
	if !strings.Contains(l.Output.String(), "refresh: ok") {
		t.Errorf("no refresh line in the log:\n%s", l.Output.String())
	}
}

func TestLauncherFreshCredentialMakesNoPost(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	fresh := l.Mock.IssueWithExpiry("acct-fresh", time.Now().Add(240*time.Hour))
	data := testenv.AuthJSON(fresh, time.Now())
	l.WriteAuth(data)
	l.Child = []string{l.Script("child.sh", firstLook)}

	if code := l.Run(30 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0; output:\n%s", code, l.Output.String())
	}
	if n := l.Mock.Posts(); n != 0 {
		t.Errorf("%d POSTs for a fresh credential, want none", n)
	}
	if first := l.OutFile("first.json"); first != string(data) {
		t.Errorf("the child's auth.json differs from the fresh one it was given")
	}
}

func TestLauncherWatchdogRefreshesWhileChildRuns(t *testing.T) {
	// Short margins through the variables: tokens live 3s and are refreshed
	// 2s before they expire, so the prime refreshes and the watchdog again
	// about a second later, while the child waits for it.
	l := newLaunch(t, tokenmock.Options{AccessTTL: 3 * time.Second})
	old := l.Mock.IssueWithExpiry("acct-dog", time.Now().Add(time.Second))
	l.WriteAuth(testenv.AuthJSON(old, time.Now().Add(-time.Hour)))
	l.Env["CODEX_AUTH_SAFETY_MARGIN_SECONDS"] = "2"
	l.Env["CODEX_AUTH_REFRESH_INTERVAL_SECONDS"] = "1"
	l.Child = []string{l.Script("child.sh", `cp "$CODEX_HOME/auth.json" "$OUT/first.json" || exit 90
i=0
while [ $i -lt 300 ]; do
	if [ "$(cat "$CODEX_HOME/auth.json")" != "$(cat "$OUT/first.json")" ]; then
		cp "$CODEX_HOME/auth.json" "$OUT/seen.json"
		date +%s.%N > "$OUT/exit-time"
		exit 0
	fi
	sleep 0.05
	i=$((i+1))
done
exit 91
`)}

	if code := l.Run(60 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0 (91: the child never saw a new auth.json); output:\n%s", code, l.Output.String())
	}
	first, seen := []byte(l.OutFile("first.json")), []byte(l.OutFile("seen.json"))
	latest, _ := l.Mock.Latest("acct-dog")
	if testenv.Holds(seen, old) || bytes.Equal(first, seen) {
		t.Error("the child did not see a refreshed file")
	}
	if latest.Generation < 2 {
		t.Errorf("latest generation %d: want the prime's refresh and at least one by the watchdog", latest.Generation)
	}
	for gen := 0; gen < latest.Generation; gen++ {
		if n := l.Mock.PostsForGeneration(gen); n != 1 {
			t.Errorf("generation %d redeemed %d times, want once", gen, n)
		}
	}
	// The watchdog does not outlive the child: codex-launch exits right after it.
	if ts, err := strconv.ParseFloat(strings.TrimSpace(l.OutFile("exit-time")), 64); err == nil {
		childExit := time.Unix(0, int64(ts*1e9))
		if lag := l.Exited.Sub(childExit); lag > 3*time.Second {
			t.Errorf("codex-launch exited %s after its child", lag)
		}
	} else {
		t.Errorf("exit-time: %v", err)
	}
	posts := l.Mock.Posts()
	time.Sleep(1500 * time.Millisecond) // longer than one interval
	if n := l.Mock.Posts(); n != posts {
		t.Errorf("%d POSTs after codex-launch exited", n-posts)
	}
}
