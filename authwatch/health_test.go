package authwatch

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

var healthNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// chatgptFile is a ChatGPT login whose access token expires at exp, last
// refreshed at lr.
func chatgptFile(t *testing.T, exp, lr time.Time) *AuthFile {
	t.Helper()
	access := tokenmock.MintJWT(tokenmock.Claims("acct-h", "h@example.com", exp))
	id := tokenmock.MintJWT(tokenmock.Claims("acct-h", "h@example.com", exp))
	raw := fmt.Sprintf(`{
  "auth_mode": "chatgpt",
  "OPENAI_API_KEY": null,
  "tokens": {
    "id_token": %q,
    "access_token": %q,
    "refresh_token": "rt_%s_health",
    "account_id": "acct-h"
  },
  "last_refresh": %q
}`, id, access, tokenmock.Sentinel, lr.UTC().Format(time.RFC3339Nano))
	f, err := ParseAuthFile([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func healthyStatus(lr time.Time, ran time.Time) *Status {
	return &Status{
		LastRefresh:         lr.UTC().Format(time.RFC3339Nano),
		WatchdogLastOutcome: "skip",
		WatchdogLastRunISO:  ran.UTC().Format(time.RFC3339),
		OutcomeCode:         1,
		Credential:          "ok",
		RefreshOwner:        true,
		WatchdogLoop:        true,
	}
}

func TestJudgeHealth(t *testing.T) {
	const interval = time.Hour
	lr := healthNow.Add(-2 * time.Hour)
	fresh := func() *AuthFile { return chatgptFile(t, healthNow.Add(5*time.Hour), lr) }
	apiKey, err := ParseAuthFile([]byte(`{"auth_mode":"apikey","OPENAI_API_KEY":"sk-` + tokenmock.Sentinel + `","tokens":null,"last_refresh":null}`))
	if err != nil {
		t.Fatal(err)
	}
	deadStatus := healthyStatus(lr, healthNow.Add(-time.Minute))
	deadStatus.Credential, deadStatus.OutcomeCode = "dead", 3
	deadStatus.WatchdogLastOutcome, deadStatus.Reason = "fail:permanent_401", "401 refresh_token_reused"
	failing := healthyStatus(lr, healthNow.Add(-time.Minute))
	failing.ConsecutiveFailures, failing.Credential = 2, "refreshing_failed"

	cases := []struct {
		name   string
		in     HealthInput
		ok     bool
		state  HealthState
		reason string // a part of the reason
	}{
		{"healthy", HealthInput{Auth: fresh(), Status: healthyStatus(lr, healthNow.Add(-10*time.Minute))},
			true, HealthOK, "credential usable"},
		{"healthy with transient failures", HealthInput{Auth: fresh(), Status: failing},
			true, HealthOK, "2 consecutive transient failure"},
		{"no credential", HealthInput{Status: healthyStatus(lr, healthNow)},
			false, HealthNoCredential, "no auth.json"},
		{"unreadable auth.json", HealthInput{AuthErr: errors.New("malformed auth.json")},
			false, HealthUnreadable, "cannot be read"},
		{"api key needs nothing", HealthInput{Auth: apiKey},
			true, HealthOK, "nothing to refresh"},
		{"expired", HealthInput{Auth: chatgptFile(t, healthNow.Add(-time.Minute), lr), Status: healthyStatus(lr, healthNow)},
			false, HealthExpired, "expired"},
		{"expired exactly now", HealthInput{Auth: chatgptFile(t, healthNow, lr), Status: healthyStatus(lr, healthNow)},
			false, HealthExpired, "expired"},
		{"permanent failure", HealthInput{Auth: fresh(), Status: deadStatus},
			false, HealthDead, "refresh_token_reused"},
		{"permanent failure but a new login since", HealthInput{
			Auth: chatgptFile(t, healthNow.Add(5*time.Hour), healthNow.Add(-time.Minute)), Status: deadStatus},
			true, HealthOK, "credential usable"},
		{"stale status", HealthInput{Auth: fresh(), Status: healthyStatus(lr, healthNow.Add(-2*interval-time.Second))},
			false, HealthStaleStatus, "more than two intervals"},
		{"status just inside two intervals", HealthInput{Auth: fresh(), Status: healthyStatus(lr, healthNow.Add(-2*interval))},
			true, HealthOK, "watchdog ran 2h ago"},
		{"status missing", HealthInput{Auth: fresh()},
			false, HealthNoStatus, "no status file"},
		{"status unreadable", HealthInput{Auth: fresh(), StatusErr: errors.New("unexpected EOF")},
			false, HealthNoStatus, "cannot be read"},
		{"status without run time", HealthInput{Auth: fresh(), Status: &Status{Credential: "ok"}},
			false, HealthStaleStatus, "watchdog_last_run_iso"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now, c.in.Interval = healthNow, interval
			h := JudgeHealth(c.in)
			if h.OK != c.ok || h.State != c.state || !strings.Contains(h.Reason, c.reason) {
				t.Errorf("got %+v, want ok=%v state=%s reason containing %q", h, c.ok, c.state, c.reason)
			}
			if strings.Contains(h.Reason, tokenmock.Sentinel) || strings.Contains(h.Reason, "\n") {
				t.Errorf("reason must be one token-free line: %q", h.Reason)
			}
		})
	}
}

// The status copies auth.json's last_refresh text; a zone-less form the seed
// wrote must still tie a permanent failure to the file that is there.
func TestJudgeHealthDeadWithZonelessLastRefresh(t *testing.T) {
	lr := healthNow.Add(-2 * time.Hour)
	f := chatgptFile(t, healthNow.Add(5*time.Hour), lr)
	zoneless := lr.Format("2006-01-02T15:04:05.999999")
	raw := strings.Replace(string(f.Marshal()), lr.Format(time.RFC3339Nano), zoneless, 1)
	f, err := ParseAuthFile([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.LastRefresh(); !ok || !got.Equal(lr) {
		t.Fatalf("fixture: last_refresh %v %v, want %v", got, ok, lr)
	}
	dead := healthyStatus(lr, healthNow.Add(-time.Minute))
	dead.LastRefresh = zoneless
	dead.Credential, dead.OutcomeCode, dead.WatchdogLastOutcome = "dead", 3, "fail:permanent_401"
	h := JudgeHealth(HealthInput{Auth: f, Status: dead, Now: healthNow, Interval: time.Hour})
	if h.OK || h.State != HealthDead {
		t.Fatalf("got %+v, want dead", h)
	}
}

// TestJudgeHealthTellsTheTruth: the states in which health used to say
// healthy while nobody could refresh.
func TestJudgeHealthTellsTheTruth(t *testing.T) {
	const interval = time.Hour
	lr := healthNow.Add(-2 * time.Hour)
	fresh := chatgptFile(t, healthNow.Add(5*time.Hour), lr)
	tokenless, err := ParseAuthFile([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	with := func(fn func(*Status)) *Status {
		st := healthyStatus(lr, healthNow.Add(-time.Minute))
		fn(st)
		return st
	}
	for _, c := range []struct {
		name    string
		in      HealthInput
		state   HealthState
		wantIn  string
		healthy bool
	}{
		{name: "a login without tokens", in: HealthInput{Auth: tokenless, Status: healthyStatus(lr, healthNow.Add(-time.Minute))},
			state: HealthNoCredential, wantIn: "no tokens"},
		{name: "the watchdog cannot read auth.json", in: HealthInput{Auth: fresh, Status: with(func(s *Status) {
			s.Credential, s.Reason = "unreadable", "auth.json belongs to uid 0 gid 0 with mode 0600; this watchdog runs as uid 1000"
		})}, state: HealthUnreadable, wantIn: "uid 0 gid 0 with mode 0600"},
		{name: "refreshed, not yet written", in: HealthInput{Auth: fresh, Status: with(func(s *Status) {
			s.Credential, s.Reason = "unwritten", "refreshed, not yet written: renaming: operation not permitted"
		})}, state: HealthUnwritten, wantIn: "refreshed, not yet written: renaming"},
		{name: "a rescue file waits", in: HealthInput{Auth: fresh, Rescued: true, Status: healthyStatus(lr, healthNow.Add(-time.Minute))},
			state: HealthUnwritten, wantIn: RescueFileName},
		{name: "the commit cannot happen", in: HealthInput{Auth: fresh, Status: with(func(s *Status) {
			s.LastErrorKind, s.Reason = KindCannotCommit, "auth.json is immutable (chattr -i to allow the refresh)"
		})}, state: HealthCannotWrite, wantIn: "immutable"},
		{name: "a long backoff is not wedged", in: HealthInput{Auth: fresh, Status: with(func(s *Status) {
			s.WatchdogLastRunISO = isoTime(healthNow.Add(-3 * interval))
			s.NextCheckAt = isoTime(healthNow.Add(time.Minute))
		})}, state: HealthOK, healthy: true},
		{name: "past its own next check", in: HealthInput{Auth: fresh, Status: with(func(s *Status) {
			s.WatchdogLastRunISO = isoTime(healthNow.Add(-10 * time.Minute))
			s.NextCheckAt = isoTime(healthNow.Add(-StatusGrace - time.Second))
		})}, state: HealthStaleStatus, wantIn: "wedged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now, c.in.Interval = healthNow, interval
			h := JudgeHealth(c.in)
			if h.OK != c.healthy || h.State != c.state || !strings.Contains(h.Reason, c.wantIn) {
				t.Fatalf("got ok=%v %s %q; want ok=%v %s containing %q", h.OK, h.State, h.Reason, c.healthy, c.state, c.wantIn)
			}
		})
	}
}
