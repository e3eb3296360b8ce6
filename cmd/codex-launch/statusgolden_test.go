package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// The words of `status` and `health` in each state an operator meets, kept
// in testdata/status/*.golden (go test ./cmd/codex-launch -run StatusGolden
// -update rewrites them). The clock is fixed, so each file is exact.
func TestStatusGolden(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	iso := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	srv := tokenmock.Start(tokenmock.Options{})
	defer srv.Close()
	cred := func(dir string, expiresIn, refreshedAgo time.Duration) string {
		c := srv.IssueWithExpiry("acct-golden", now.Add(expiresIn))
		writeFile(t, filepath.Join(dir, authwatch.AuthFileName), srv.AuthJSON(c, now.Add(-refreshedAgo)))
		return now.Add(-refreshedAgo).Format(time.RFC3339Nano)
	}
	status := func(dir string, st authwatch.Status) {
		st.PID, st.Store = os.Getpid(), "file"
		data, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, authwatch.StatusFileName), data)
	}
	loopRan := func(lastRefresh string, ranAgo, nextIn time.Duration) authwatch.Status {
		return authwatch.Status{
			LastRefresh: lastRefresh, WatchdogLastOutcome: "skip", WatchdogLastRunISO: iso(-ranAgo),
			OutcomeCode: 1, Credential: "ok", NextCheckAt: iso(nextIn), RefreshOwner: true, WatchdogLoop: true,
		}
	}
	cases := []struct {
		name  string
		env   map[string]string
		setup func(dir string)
	}{
		{"fresh", nil, func(dir string) {
			lr := cred(dir, 9*time.Hour, time.Hour)
			st := loopRan(lr, 10*time.Minute, 5*time.Hour)
			st.Reason = "access token expires in 9h (margin 4h)"
			status(dir, st)
		}},
		{"due", nil, func(dir string) {
			lr := cred(dir, 2*time.Hour, 250*time.Hour)
			st := loopRan(lr, time.Minute, 40*time.Second)
			st.WatchdogLastOutcome, st.OutcomeCode, st.Credential = "fail:transient_503", 2, "refreshing_failed"
			st.Reason, st.ConsecutiveFailures, st.LastErrorClass, st.LastErrorKind, st.LastHTTPStatus = "token endpoint: HTTP 503", 2, "transient", "http", 503
			status(dir, st)
		}},
		{"expired", nil, func(dir string) {
			lr := cred(dir, -time.Hour, 30*time.Hour)
			st := loopRan(lr, 2*time.Minute, 8*time.Minute)
			st.WatchdogLastOutcome, st.OutcomeCode, st.Credential = "fail:transient_network", 2, "refreshing_failed"
			st.Reason, st.ConsecutiveFailures, st.LastErrorClass, st.LastErrorKind = "token endpoint unreachable", 9, "transient", "network"
			status(dir, st)
		}},
		{"dead", nil, func(dir string) {
			lr := cred(dir, 3*time.Hour, 5*24*time.Hour)
			st := loopRan(lr, 3*time.Minute, 6*time.Hour)
			st.WatchdogLastOutcome, st.OutcomeCode, st.Credential = "fail:permanent_401", 3, "dead"
			st.Reason, st.ConsecutiveFailures, st.LastErrorClass, st.LastErrorKind, st.LastErrorCode, st.LastHTTPStatus =
				"refresh token rejected for good; someone must log in again", 1, "permanent", "http", "refresh_token_reused", 401
			status(dir, st)
		}},
		{"unreadable", nil, func(dir string) {
			writeFile(t, filepath.Join(dir, authwatch.AuthFileName), []byte(`{"tokens": {`))
		}},
		{"no-credential", nil, func(string) {}},
		{"store-away", map[string]string{"CODEX_LAUNCH_CREDENTIAL_STORE": "postgres://agent@db.example:5432/codex"}, func(dir string) {
			lr := cred(dir, 9*time.Hour, time.Hour)
			status(dir, loopRan(lr, 10*time.Minute, 5*time.Hour))
			writeFile(t, filepath.Join(dir, fleet.StateFileName), []byte(`{"store":"postgres://agent@db.example:5432/codex","store_state":"unavailable",`+
				`"store_error":"connection refused","store_state_since":"`+iso(-20*time.Minute)+`","credential_name":"default","pid":1}`))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(dir)
			cfg := &Config{}
			getenv := func(k string) string { return c.env[k] }
			if err := resolve(cfg, optionTable(), map[string]string{}, getenv); err != nil {
				t.Fatal(err)
			}
			snap := readSnapshot(cfg, dir, now)
			var b strings.Builder
			writeStatus(&b, snap, now)
			b.WriteString("---- health\n" + healthLine(snap) + "\n")
			got := strings.ReplaceAll(b.String(), dir, "$CODEX_HOME")
			got = strings.ReplaceAll(got, "pid "+strconv.Itoa(os.Getpid()), "pid PID")
			golden := filepath.Join("testdata", "status", c.name+".golden")
			if *update {
				writeFile(t, golden, []byte(got))
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("status and health differ from %s (run with -update after checking):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
