package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// TestLauncherRequireAuthRefusesUnusable: with --require-auth, no start
// without a usable credential after the prime: missing, garbage, tokenless
// or dead all exit 125 and the child never runs; a usable one starts it.
func TestLauncherRequireAuthRefusesUnusable(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(l *launch)
		want  int
		say   string // in an ERROR line
	}{
		{"missing", func(l *launch) {}, 125, ""},
		{"garbage", func(l *launch) { l.WriteAuth([]byte(`{"auth_mode":"chatgpt","tokens":`)) }, 125, ""},
		{"tokenless", func(l *launch) { l.WriteAuth([]byte(`{}`)) }, 125, ""},
		{"dead", func(l *launch) {
			c := l.Mock.IssueWithExpiry("acct-r", time.Now().Add(-time.Minute))
			l.WriteAuth(testenv.AuthJSON(c, time.Now().Add(-time.Hour)))
			l.Mock.Script(tokenmock.Error(401, "refresh_token_reused"))
		}, 125, "new login"},
		{"usable", func(l *launch) {
			c := l.Mock.IssueWithExpiry("acct-r", time.Now().Add(240*time.Hour))
			l.WriteAuth(testenv.AuthJSON(c, time.Now()))
		}, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLaunch(t, tokenmock.Options{})
			if err := os.MkdirAll(l.CodexHome, 0o700); err != nil {
				t.Fatal(err)
			}
			c.setup(l)
			l.Env["CODEX_LAUNCH_RECHECK_WINDOW"] = "0"
			l.Child = []string{l.Script("child.sh", `echo started > "$OUT/started"`)}
			code := l.Run(20*time.Second, "--require-auth")
			if code != c.want {
				t.Fatalf("exit %d, want %d; output:\n%s", code, c.want, l.Output.String())
			}
			_, err := os.Stat(l.Out + "/started")
			if started := err == nil; started != (c.want == 0) {
				t.Fatalf("child started: %v, want %v", started, c.want == 0)
			}
			if c.say != "" && (!strings.Contains(l.Output.String(), "[ERROR]") || !strings.Contains(l.Output.String(), c.say)) {
				t.Errorf("no error line that says %q:\n%s", c.say, l.Output.String())
			}
		})
	}
}
