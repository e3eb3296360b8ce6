package integration

// Every answer class of the token endpoint, through the built binary: the
// exit code of `refresh --once`, what the status file says, and auth.json
// byte-identical after every failure.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

type answerCase struct {
	name   string
	answer *tokenmock.Answer // nil: the mock's normal redemption
	env    map[string]string
	code   int
	// Status file expectations.
	class   string // last_error_class
	kind    string // last_error_kind ("" to skip the check)
	errCode string // last_error_code ("" to skip the check)
	http    int    // last_http_status
	retry   int64  // retry_after_seconds
	outcome string // prefix of watchdog_last_outcome
	cred    string // credential
}

func ans(a tokenmock.Answer) *tokenmock.Answer { return &a }

func jsonAnswer(status int, body string) *tokenmock.Answer {
	return &tokenmock.Answer{Status: status, Body: body, Header: http.Header{"Content-Type": {"application/json"}}}
}

func answerCases() []answerCase {
	transient := func(name string, a *tokenmock.Answer, kind string, status int) answerCase {
		return answerCase{name: name, answer: a, code: exitTransient, class: "transient", kind: kind, http: status,
			outcome: "fail:transient", cred: "refreshing_failed"}
	}
	permanent := func(name string, a *tokenmock.Answer, code string, status int) answerCase {
		return answerCase{name: name, answer: a, code: exitPermanent, class: "permanent", errCode: code, http: status,
			outcome: "fail:permanent", cred: "dead"}
	}
	cs := []answerCase{
		{name: "200", code: exitRefreshed, outcome: "refreshed", cred: "ok"},
		transient("200 garbage", jsonAnswer(200, "<html>gateway</html>"), "bad_body", 200),
		transient("200 JSON array", jsonAnswer(200, `["id_token"]`), "bad_body", 200),
		transient("200 non-JWT id_token", jsonAnswer(200, `{"id_token":"plain","access_token":"x.y.z","refresh_token":"r"}`), "bad_id_token", 200),
		permanent("400 invalid_grant", ans(tokenmock.Error(400, "invalid_grant")), "invalid_grant", 400),
		permanent("400 invalid_grant (string error)", jsonAnswer(400, `{"error":"invalid_grant","error_description":"Invalid refresh token"}`), "invalid_grant", 400),
		permanent("401 refresh_token_expired", ans(tokenmock.Error(401, "refresh_token_expired")), "refresh_token_expired", 401),
		permanent("401 refresh_token_reused", ans(tokenmock.Error(401, "refresh_token_reused")), "refresh_token_reused", 401),
		permanent("401 refresh_token_invalidated", ans(tokenmock.Error(401, "refresh_token_invalidated")), "refresh_token_invalidated", 401),
		permanent("401 top-level code", jsonAnswer(401, `{"code":"refresh_token_expired"}`), "refresh_token_expired", 401),
		permanent("401 other code", ans(tokenmock.Error(401, "token_revoked")), "", 401),
		permanent("401 empty body", &tokenmock.Answer{Status: 401}, "", 401),
		transient("403 without a recognised code", ans(tokenmock.Error(403, "forbidden")), "http", 403),
		transient("403 HTML page", &tokenmock.Answer{Status: 403, Body: "<html><title>Access denied</title></html>", Header: http.Header{"Content-Type": {"text/html"}}}, "http", 403),
		permanent("403 refresh_token_reused", ans(tokenmock.Error(403, "refresh_token_reused")), "refresh_token_reused", 403),
		transient("429 Retry-After", ans(tokenmock.RetryAfter(7)), "http", 429),
		transient("500", ans(tokenmock.Error(500, "server_error")), "http", 500),
		transient("503", ans(tokenmock.Error(503, "unavailable")), "http", 503),
		transient("hang past the timeout", &tokenmock.Answer{Hang: true}, "timeout", 0),
		transient("reset mid-body", &tokenmock.Answer{Reset: true}, "", 200),
		transient("reset mid-body after redeeming", &tokenmock.Answer{Reset: true, Redeem: true}, "", 200),
		transient("307 redirect", &tokenmock.Answer{Redirect: true}, "redirect", 307),
		transient("oversized body", ans(tokenmock.Oversized(2<<20)), "oversized", 200),
	}
	for i := range cs {
		switch cs[i].name {
		case "429 Retry-After":
			cs[i].retry = 7
		case "hang past the timeout":
			cs[i].env = map[string]string{"CODEX_LAUNCH_REFRESH_TIMEOUT": "1s"}
		}
	}
	return cs
}

// TestRefreshAnswerClasses starts every case at once and checks each
// afterwards: the permanent cases spend a few seconds watching auth.json for
// a rotation by someone else, and waiting for them one by one would be slow.
func TestRefreshAnswerClasses(t *testing.T) {
	t.Parallel()
	type started struct {
		tc     answerCase
		srv    *tokenmock.Server
		h      *home
		old    tokenmock.Credential
		before []byte
		proc   runner
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var runs []started
	for _, tc := range answerCases() {
		srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
		t.Cleanup(srv.Close)
		h := newHome(t, srv)
		for k, v := range tc.env {
			h.Env[k] = v
		}
		old := h.expired("acct-1")
		if tc.answer != nil {
			srv.Script(*tc.answer)
		}
		runs = append(runs, started{tc: tc, srv: srv, h: h, old: old, before: h.read(),
			proc: startRunner(t, h.launcherCmd(ctx, "refresh", "--once"))})
	}
	for _, st := range runs {
		t.Run(st.tc.name, func(t *testing.T) {
			tc, srv, h, old, before := st.tc, st.srv, st.h, st.old, st.before
			h.t = t
			r := st.proc.wait()
			h.noLeak("refresh --once output", []byte(r.output()))
			h.noLeakStatus()
			if r.Code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", r.Code, tc.code, lines(r.output()))
			}
			if srv.Posts() != 1 {
				t.Errorf("%d POSTs, want exactly 1 (no retry inside --once, no redirect followed)", srv.Posts())
			}
			if tc.answer != nil && tc.answer.Hang && r.Wall > 10*time.Second {
				t.Errorf("a hanging endpoint held refresh --once for %s with a 1 s timeout", r.Wall)
			}
			after := h.read()
			if tc.code == exitRefreshed {
				latest, _ := srv.Latest("acct-1")
				h.wantTokens(latest, "after a 200")
				if got, _ := fileTokens(after); got.AccountID != old.AccountID {
					t.Errorf("account_id changed")
				}
			} else if !bytes.Equal(before, after) {
				t.Errorf("auth.json changed after a failed refresh")
			}

			st := h.status()
			if st == nil {
				t.Fatal("no status file")
			}
			str := func(k string) string { s, _ := st[k].(string); return s }
			num := func(k string) int64 { f, _ := st[k].(float64); return int64(f) }
			for _, k := range []string{"last_refresh", "last_refresh_age_seconds", "watchdog_last_outcome", "watchdog_last_run_iso",
				"access_token_expires_at", "next_check_at", "consecutive_failures", "last_error_class", "last_http_status", "refresh_owner", "pid"} {
				if _, ok := st[k]; !ok {
					t.Errorf("status file lacks %q", k)
				}
			}
			if got := str("watchdog_last_outcome"); !strings.HasPrefix(got, tc.outcome) {
				t.Errorf("watchdog_last_outcome = %q, want %s...", got, tc.outcome)
			}
			if got := num("watchdog_last_outcome_code"); got != int64(tc.code) {
				t.Errorf("watchdog_last_outcome_code = %d, want %d", got, tc.code)
			}
			if got := str("last_error_class"); got != tc.class {
				t.Errorf("last_error_class = %q, want %q", got, tc.class)
			}
			if tc.kind != "" && str("last_error_kind") != tc.kind {
				t.Errorf("last_error_kind = %q, want %q", str("last_error_kind"), tc.kind)
			}
			if tc.errCode != "" && str("last_error_code") != tc.errCode {
				t.Errorf("last_error_code = %q, want %q", str("last_error_code"), tc.errCode)
			}
			if got := num("last_http_status"); got != int64(tc.http) {
				t.Errorf("last_http_status = %d, want %d", got, tc.http)
			}
			if got := num("retry_after_seconds"); got != tc.retry {
				t.Errorf("retry_after_seconds = %d, want %d", got, tc.retry)
			}
			if got := str("credential"); got != tc.cred {
				t.Errorf("credential = %q, want %q", got, tc.cred)
			}
			failures := num("consecutive_failures")
			if (tc.code == exitRefreshed) != (failures == 0) {
				t.Errorf("consecutive_failures = %d after exit %d", failures, tc.code)
			}
			if st["refresh_owner"] != true {
				t.Errorf("refresh_owner = %v, want true", st["refresh_owner"])
			}
			if tc.code == exitRefreshed {
				latest, _ := srv.Latest("acct-1")
				exp, err := time.Parse(time.RFC3339, str("access_token_expires_at"))
				if err != nil || !exp.Equal(latest.AccessExpiry) {
					t.Errorf("access_token_expires_at = %q, want %s", str("access_token_expires_at"), latest.AccessExpiry.UTC().Format(time.RFC3339))
				}
				if age := num("last_refresh_age_seconds"); age < 0 || age > 5 {
					t.Errorf("last_refresh_age_seconds = %d right after a refresh", age)
				}
			}
			// What `status` shows an operator after this answer: never a
			// token either.
			for _, args := range [][]string{{"status"}, {"status", "--json"}} {
				sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
				sr := finish(t, h.launcherCmd(sctx, args...))
				scancel()
				h.noLeak(strings.Join(args, " ")+" output", []byte(sr.output()))
				if len(args) == 2 {
					var v map[string]any
					if err := json.Unmarshal(sr.Stdout, &v); err != nil {
						t.Errorf("status --json is not a JSON object: %v", err)
					}
				}
			}
			for _, q := range srv.Requests() {
				if len(q.Problems) > 0 {
					t.Errorf("request broke the endpoint contract: %v", q.Problems)
				}
				if q.Path == "/redirected" {
					t.Errorf("the redirect was followed")
				}
			}
		})
	}
}

// TestRefreshOwnerZeroNeverPosts: CODEX_AUTH_REFRESH_OWNER=0 watches and
// reports an expired credential but never spends its refresh token.
func TestRefreshOwnerZeroNeverPosts(t *testing.T) {
	t.Parallel()
	srv := tokenmock.Start(tokenmock.Options{})
	defer srv.Close()
	h := newHome(t, srv)
	h.Env["CODEX_AUTH_REFRESH_OWNER"] = "0"
	h.expired("acct-1")
	before := h.read()
	r := h.once()
	if r.Code == exitRefreshed || r.Code == exitPermanent {
		t.Errorf("exit %d for a non-owner; output:\n%s", r.Code, lines(r.output()))
	}
	if srv.Posts() != 0 {
		t.Errorf("a non-owner made %d POSTs", srv.Posts())
	}
	if !bytes.Equal(before, h.read()) {
		t.Errorf("a non-owner changed auth.json")
	}
	if st := h.status(); st == nil || st["refresh_owner"] != false {
		t.Errorf("status refresh_owner = %v, want false", st["refresh_owner"])
	}
}

// TestRefreshWritesTheCLIFormat: after a refresh auth.json is the file the CLI
// itself would write for the new tokens, byte for byte (key order, 2-space
// indent, no trailing newline, last_refresh in UTC with Z), mode 0600, with a
// newer CLI's unknown keys kept verbatim and account_id unchanged.
func TestRefreshWritesTheCLIFormat(t *testing.T) {
	t.Parallel()
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	defer srv.Close()
	h := newHome(t, srv)
	c := srv.IssueWithExpiry("acct-1", time.Now().Add(-time.Minute))
	extra := []tokenmock.RawKey{{Key: "agent_identity", Value: []byte(`{"id":"agent-7","scopes":["a","b"]}`)}}
	h.write(tokenmock.FormatAuthJSON(c, time.Now().Add(-time.Hour), tokenmock.FileOptions{Extra: extra}))
	before := time.Now()
	if r := h.once(); r.Code != exitRefreshed {
		t.Fatalf("exit %d; output:\n%s", r.Code, lines(r.output()))
	}
	after := h.read()
	var f struct {
		LastRefresh string `json:"last_refresh"`
	}
	if err := json.Unmarshal(after, &f); err != nil {
		t.Fatalf("auth.json does not parse: %v", err)
	}
	lr, err := time.Parse(time.RFC3339Nano, f.LastRefresh)
	if err != nil || !strings.HasSuffix(f.LastRefresh, "Z") {
		t.Fatalf("last_refresh %q is not RFC 3339 UTC with Z", f.LastRefresh)
	}
	if lr.Before(before.Add(-time.Second)) || lr.After(time.Now().Add(time.Second)) {
		t.Errorf("last_refresh %s is not the time of the refresh", lr)
	}
	latest, _ := srv.Latest("acct-1")
	want := tokenmock.FormatAuthJSON(latest, lr, tokenmock.FileOptions{Extra: extra})
	if !bytes.Equal(after, want) {
		t.Errorf("auth.json is not what the CLI would write:\n%s\nwant:\n%s", lines(string(after)), lines(string(want)))
		if tokenmock.FormatTime(lr) != f.LastRefresh {
			t.Logf("last_refresh %q; the CLI (chrono) writes %q", f.LastRefresh, tokenmock.FormatTime(lr))
		}
	}
	st, err := os.Stat(h.authPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("auth.json mode %v, want 0600", st.Mode().Perm())
	}
}

// TestRefreshEndpointSettings: the client id override reaches the endpoint
// (CODEX_APP_SERVER_LOGIN_CLIENT_ID, as the CLI honours it), the request
// carries a refresh_reason the CLI would send, and a plain-http endpoint off
// loopback is refused before anything happens (the body carries the token).
func TestRefreshEndpointSettings(t *testing.T) {
	t.Parallel()
	t.Run("client id override", func(t *testing.T) {
		t.Parallel()
		srv := tokenmock.Start(tokenmock.Options{ClientID: "app_custom_client"})
		defer srv.Close()
		h := newHome(t, srv)
		h.Env["CODEX_APP_SERVER_LOGIN_CLIENT_ID"] = "app_custom_client"
		h.expired("acct-1")
		if r := h.once(); r.Code != exitRefreshed {
			t.Fatalf("exit %d; output:\n%s", r.Code, lines(r.output()))
		}
		reqs := srv.Requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		q := reqs[0]
		if len(q.Problems) > 0 {
			t.Errorf("request problems: %v", q.Problems)
		}
		switch reason := q.Fields["refresh_reason"]; reason {
		case "scheduled", "proactive_expiry", "unauthorized_recovery", "forced":
		default:
			t.Errorf("refresh_reason %v is not one the CLI sends", reason)
		}
	})
	t.Run("plain http off loopback", func(t *testing.T) {
		t.Parallel()
		h := newHome(t, nil)
		h.Env["CODEX_REFRESH_TOKEN_URL_OVERRIDE"] = "http://auth.example.invalid/oauth/token"
		h.write(tokenmock.FormatAuthJSON(tokenmock.Credential{
			IDToken:      tokenmock.MintJWT(tokenmock.Claims("a", "e", time.Now().Add(-time.Minute))),
			AccessToken:  tokenmock.MintJWT(tokenmock.Claims("a", "e", time.Now().Add(-time.Minute))),
			RefreshToken: "rt_" + tokenmock.Sentinel, AccountID: "a",
		}, time.Now().Add(-time.Hour), tokenmock.FileOptions{}))
		before := h.read()
		r := h.once()
		if r.Code != 125 {
			t.Errorf("exit %d, want 125 (a usage error); output:\n%s", r.Code, lines(r.output()))
		}
		if !strings.Contains(r.output(), "CODEX_REFRESH_TOKEN_URL_OVERRIDE") {
			t.Errorf("the error does not name the variable:\n%s", lines(r.output()))
		}
		if !bytes.Equal(before, h.read()) {
			t.Errorf("auth.json changed")
		}
	})
}
