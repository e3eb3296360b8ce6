package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// command runs the built binary directly (a subcommand) with the launch's
// environment plus extra variables, and returns its exit code and output.
func (l *launch) command(extra map[string]string, args ...string) (int, string) {
	l.t.Helper()
	cmd := exec.Command(builtLauncher(l.t), args...)
	env := l.environ()
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	l.t.Fatalf("%v: %v", args, err)
	return -1, ""
}

func (l *launch) health(t *testing.T, extra map[string]string, wantCode int, wantState string) string {
	t.Helper()
	code, out := l.command(extra, "health")
	if code != wantCode || !strings.Contains(out, wantState) {
		t.Errorf("health = %d %q, want %d and %q", code, strings.TrimSpace(out), wantCode, wantState)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
		t.Errorf("health printed %d lines, want one: %q", n+1, out)
	}
	l.checkNoLeak("health output", []byte(out))
	return out
}

func TestLauncherHealth(t *testing.T) {
	t.Run("no credential", func(t *testing.T) {
		l := newLaunch(t, tokenmock.Options{})
		l.health(t, nil, 1, "no_credential")
	})

	t.Run("watchdog alive, then wedged", func(t *testing.T) {
		l := newLaunch(t, tokenmock.Options{})
		fresh := l.Mock.IssueWithExpiry("acct-h", time.Now().Add(240*time.Hour))
		l.writeAuth(authJSON(fresh, time.Now()))
		l.health(t, nil, 1, "no_status") // the watchdog never ran here

		// HEALTHCHECK runs beside the launcher: here, as its child.
		l.Child = []string{l.script("child.sh", `"$LAUNCHER" health > "$OUT/health"`)}
		l.Env["LAUNCHER"] = builtLauncher(t)
		if code := l.run(30 * time.Second); code != 0 {
			t.Fatalf("health beside a live watchdog: exit %d; it said %q; output:\n%s", code, l.outFile("health"), l.output.String())
		}
		if !strings.HasPrefix(l.outFile("health"), "healthy") {
			t.Errorf("health said %q", l.outFile("health"))
		}
		l.checkNoLeak("health output", []byte(l.outFile("health")))

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
		l.health(t, nil, 0, "healthy") // next check still ahead
		st["next_check_at"] = time.Now().Add(-authwatch.StatusGrace - time.Minute).UTC().Format(time.RFC3339)
		if raw, err = json.Marshal(st); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(statusPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		l.health(t, nil, 1, "stale_status")
	})

	t.Run("expired", func(t *testing.T) {
		l := newLaunch(t, tokenmock.Options{})
		expired := l.Mock.IssueWithExpiry("acct-h", time.Now().Add(-time.Minute))
		l.writeAuth(authJSON(expired, time.Now().Add(-time.Hour)))
		l.Mock.Script(tokenmock.Answer{Status: 503})
		if code, out := l.command(nil, "refresh", "--once"); code != 2 {
			t.Fatalf("refresh --once = %d, want 2 (transient); %s", code, out)
		}
		l.health(t, nil, 1, "expired")
	})

	t.Run("dead", func(t *testing.T) {
		// A 24 h token with 1 h left: inside the default 4 h margin.
		l := newLaunch(t, tokenmock.Options{AccessTTL: 24 * time.Hour})
		c := l.Mock.IssueWithExpiry("acct-h", time.Now().Add(time.Hour))
		l.writeAuth(authJSON(c, time.Now().Add(-time.Hour)))
		l.Mock.Script(tokenmock.Error(400, "refresh_token_reused"))
		if code, out := l.command(nil, "refresh", "--once"); code != 3 {
			t.Fatalf("refresh --once = %d, want 3 (permanent); %s", code, out)
		}
		l.health(t, nil, 1, "dead")
	})
}
