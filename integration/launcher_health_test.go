package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// health runs `codex-launch health` and checks its code, its state and that
// it prints one line.
func health(t *testing.T, l *launch, extra map[string]string, wantCode int, wantState string) string {
	t.Helper()
	res := l.Command(extra, "health")
	code, out := res.Code, res.Output()
	if code != wantCode || !strings.Contains(out, wantState) {
		t.Errorf("health = %d %q, want %d and %q", code, strings.TrimSpace(out), wantCode, wantState)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
		t.Errorf("health printed %d lines, want one: %q", n+1, out)
	}
	l.CheckNoLeak("health output", []byte(out))
	return out
}

func TestLauncherHealth(t *testing.T) {
	t.Run("no credential", func(t *testing.T) {
		l := newLaunch(t, tokenmock.Options{})
		health(t, l, nil, 1, "no_credential")
	})

	t.Run("watchdog alive, then wedged", func(t *testing.T) {
		l := newLaunch(t, tokenmock.Options{})
		fresh := l.Mock.IssueWithExpiry("acct-h", time.Now().Add(240*time.Hour))
		l.WriteAuth(testenv.AuthJSON(fresh, time.Now()))
		health(t, l, nil, 1, "no_status") // the watchdog never ran here

		// HEALTHCHECK runs beside the launcher: here, as its child.
		l.Child = []string{l.Script("child.sh", `"$LAUNCHER" health > "$OUT/health"`)}
		l.Env["LAUNCHER"] = builtLauncher(t)
		if code := l.Run(30 * time.Second); code != 0 {
			t.Fatalf("health beside a live watchdog: exit %d; it said %q; output:\n%s", code, l.OutFile("health"), l.Output.String())
		}
		if !strings.HasPrefix(l.OutFile("health"), "healthy") {
			t.Errorf("health said %q", l.OutFile("health"))
		}
		l.CheckNoLeak("health output", []byte(l.OutFile("health")))

		// The watchdog is gone now: once its own next check is more than
		// the grace in the past, the status is stale. Moved back here
		// rather than waited for.
		statusPath := filepath.Join(l.CodexHome, "auth_refresh_status.json")
		raw, err := os.ReadFile(statusPath)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		health(t, l, nil, 0, "healthy") // next check still ahead
		st["next_check_at"] = time.Now().Add(-authwatch.StatusGrace - time.Minute).UTC().Format(time.RFC3339)
		if raw, err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(statusPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		health(t, l, nil, 1, "stale_status")
	})

	t.Run("expired", func(t *testing.T) {
		l := newLaunch(t, tokenmock.Options{})
		expired := l.Mock.IssueWithExpiry("acct-h", time.Now().Add(-time.Minute))
		l.WriteAuth(testenv.AuthJSON(expired, time.Now().Add(-time.Hour)))
		l.Mock.Script(tokenmock.Answer{Status: 503})
		if res := l.Command(nil, "refresh", "--once"); res.Code != 2 {
			t.Fatalf("refresh --once = %d, want 2 (transient); %s", res.Code, res.Output())
		}
		health(t, l, nil, 1, "expired")
	})

	t.Run("dead", func(t *testing.T) {
		// A 24 h token with 1 h left: inside the default 4 h margin.
		l := newLaunch(t, tokenmock.Options{AccessTTL: 24 * time.Hour})
		c := l.Mock.IssueWithExpiry("acct-h", time.Now().Add(time.Hour))
		l.WriteAuth(testenv.AuthJSON(c, time.Now().Add(-time.Hour)))
		l.Mock.Script(tokenmock.Error(400, "refresh_token_reused"))
		if res := l.Command(nil, "refresh", "--once"); res.Code != 3 {
			t.Fatalf("refresh --once = %d, want 3 (permanent); %s", res.Code, res.Output())
		}
		health(t, l, nil, 1, "dead")
	})
}
