package authwatch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewEndpointURLRules(t *testing.T) {
	ok := []string{"", "https://auth.openai.com/oauth/token", "http://127.0.0.1:8080/t", "http://[::1]:9/t", "http://localhost/x", "http://127.1.2.3/x"}
	for _, u := range ok {
		e, err := NewEndpoint(u, "", 0)
		if err != nil {
			t.Errorf("%q refused: %v", u, err)
			continue
		}
		if e.Timeout != 30*time.Second || e.ClientID != DefaultClientID {
			t.Errorf("defaults not applied: %+v", e)
		}
	}
	// The last ones carry a password that ends the host part early: parsed
	// naively, "https://u:pw/x@host" is host u, port pw, no credentials.
	bad := []string{"http://auth.openai.com/oauth/token", "http://10.0.0.1/t", "ftp://127.0.0.1/x", "https://", "https://user:pw@host/x", "::nope",
		"https://u:8/pw@host/t", "https://u:8?pw@host/t", "https://u:8#pw@host/t", "https://u:p@w@host/t"}
	for _, u := range bad {
		if _, err := NewEndpoint(u, "", 0); err == nil {
			t.Errorf("%q accepted", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error quotes URL credentials: %v", err)
		}
	}
	e, _ := NewEndpoint("https://h.example/t?secret=1", "cid", time.Second)
	if strings.Contains(e.String(), "secret") || e.ClientID != "cid" || e.Timeout != time.Second {
		t.Errorf("override/redaction: %s %+v", e.String(), e)
	}
}

func TestRefreshRequestShape(t *testing.T) {
	m := newMockEndpoint(t, "rt-"+sentinel+"-0", time.Now)
	e := m.endpoint(t, time.Second)
	if _, err := e.Refresh(context.Background(), "rt-"+sentinel+"-0", ReasonProactiveExpiry); err != nil {
		t.Fatal(err)
	}
	b := m.bodies[0]
	if b["client_id"] != DefaultClientID || b["grant_type"] != "refresh_token" || b["refresh_token"] != "rt-"+sentinel+"-0" || b["refresh_reason"] != "proactive_expiry" || len(b) != 4 {
		t.Fatalf("request body: %v", b)
	}
}

// TestEndpointClasses drives every answer class through Refresh directly.
// (TestPassAnswerClasses checks the same answers end to end.)
func TestEndpointClasses(t *testing.T) {
	for _, c := range answerCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := newMockEndpoint(t, "rt-"+sentinel+"-0", time.Now)
			if c.ans != nil {
				m.push(*c.ans)
			}
			e := m.endpoint(t, c.timeout())
			if c.maxBody > 0 {
				e.MaxBody = c.maxBody
			}
			if c.redirect != nil {
				c.redirect(t, m)
			}
			tr, err := e.Refresh(context.Background(), "rt-"+sentinel+"-0", ReasonScheduled)
			if c.outcome == OutcomeRefreshed {
				if err != nil || tr.RefreshToken == "" {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			var re *RefreshError
			if !errors.As(err, &re) {
				t.Fatalf("want *RefreshError, got %v", err)
			}
			wantClass := ClassTransient
			if c.outcome == OutcomePermanent {
				wantClass = ClassPermanent
			}
			if re.Class != wantClass || re.Kind != c.kind || re.Status != c.status || re.Code != c.code || re.RetryAfter < c.retryAfter || (c.retryAfter == 0 && re.RetryAfter != 0) {
				t.Fatalf("got class=%s kind=%s status=%d code=%q retry=%s; want %s %s %d %q %s", re.Class, re.Kind, re.Status, re.Code, re.RetryAfter, wantClass, c.kind, c.status, c.code, c.retryAfter)
			}
			if isPermanent(err) != (wantClass == ClassPermanent) {
				t.Fatal("isPermanent disagrees")
			}
			noLeak(t, "error", err.Error())
			if strings.Contains(err.Error(), "rejected") || strings.Contains(err.Error(), "<html") || strings.Contains(err.Error(), "<title") {
				t.Fatalf("error quotes the body: %v", err)
			}
		})
	}
}

type answerCase struct {
	name       string
	ans        *answer
	outcome    Outcome
	kind       string
	status     int
	code       string
	retryAfter time.Duration
	maxBody    int64
	tag        string // status-file outcome suffix
	short      bool   // needs a short client timeout (hang cases)
	redirect   func(t *testing.T, m *mockEndpoint)
}

func (c answerCase) timeout() time.Duration {
	if c.short {
		return 300 * time.Millisecond
	}
	return 10 * time.Second
}

func answerCases(t *testing.T) []answerCase {
	a := func(status int, body string, hdr ...string) *answer {
		x := &answer{status: status, body: body, header: map[string]string{}}
		for i := 0; i+1 < len(hdr); i += 2 {
			x.header[hdr[i]] = hdr[i+1]
		}
		return x
	}
	echo := "rt-" + sentinel + "-0"
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	return []answerCase{
		{name: "200 rotates", outcome: OutcomeRefreshed, tag: "refreshed"},
		{name: "200 garbage", ans: a(200, "<html>"+echo+"</html>"), outcome: OutcomeTransient, kind: KindBadBody, status: 200, tag: "bad_body"},
		{name: "200 not an object", ans: a(200, `["`+echo+`"]`), outcome: OutcomeTransient, kind: KindBadBody, status: 200, tag: "bad_body"},
		{name: "200 null", ans: a(200, `null`), outcome: OutcomeTransient, kind: KindBadBody, status: 200, tag: "bad_body"},
		{name: "200 token not a string", ans: a(200, `{"access_token": 5}`), outcome: OutcomeTransient, kind: KindBadBody, status: 200, tag: "bad_body"},
		{name: "200 non-JWT id_token", ans: a(200, `{"id_token":"`+echo+`","access_token":"x","refresh_token":"`+echo+`"}`), outcome: OutcomeTransient, kind: KindBadIDToken, status: 200, tag: "bad_id_token"},
		{name: "400 invalid_grant", ans: a(400, `{"error":"invalid_grant","error_description":"`+echo+`"}`), outcome: OutcomePermanent, kind: KindHTTP, status: 400, code: "invalid_grant", tag: "400"},
		{name: "400 other code", ans: a(400, `{"error":"invalid_request"}`), outcome: OutcomeTransient, kind: KindHTTP, status: 400, code: "invalid_request", tag: "400"},
		{name: "401 refresh_token_expired (error.code)", ans: a(401, `{"error":{"code":"refresh_token_expired","message":"`+echo+`"}}`), outcome: OutcomePermanent, kind: KindHTTP, status: 401, code: "refresh_token_expired", tag: "401"},
		{name: "401 refresh_token_reused (string error)", ans: a(401, `{"error":"refresh_token_reused"}`), outcome: OutcomePermanent, kind: KindHTTP, status: 401, code: "refresh_token_reused", tag: "401"},
		{name: "401 refresh_token_invalidated (top-level code)", ans: a(401, `{"code":"refresh_token_invalidated"}`), outcome: OutcomePermanent, kind: KindHTTP, status: 401, code: "refresh_token_invalidated", tag: "401"},
		{name: "401 no body", ans: a(401, ``), outcome: OutcomePermanent, kind: KindHTTP, status: 401, tag: "401"},
		{name: "401 code smuggling text", ans: a(401, `{"error":"`+echo+` is bad"}`), outcome: OutcomePermanent, kind: KindHTTP, status: 401, code: "unrecognized", tag: "401"},
		{name: "400 refresh_token_reused", ans: a(400, `{"error":{"code":"refresh_token_reused"}}`), outcome: OutcomePermanent, kind: KindHTTP, status: 400, code: "refresh_token_reused", tag: "400"},
		{name: "403 HTML challenge", ans: a(403, `<html><head><title>Just a moment...</title></head>`+echo+`</html>`, "Content-Type", "text/html; charset=utf-8"), outcome: OutcomeTransient, kind: KindHTTP, status: 403, tag: "403"},
		{name: "403 no body", ans: a(403, ``), outcome: OutcomeTransient, kind: KindHTTP, status: 403, tag: "403"},
		{name: "403 refresh_token_reused", ans: a(403, `{"error":{"code":"refresh_token_reused"}}`), outcome: OutcomePermanent, kind: KindHTTP, status: 403, code: "refresh_token_reused", tag: "403"},
		{name: "500 refresh_token_expired", ans: a(500, `{"error":"refresh_token_expired"}`), outcome: OutcomePermanent, kind: KindHTTP, status: 500, code: "refresh_token_expired", tag: "500"},
		{name: "403 invalid_grant", ans: a(403, `{"error":"invalid_grant"}`), outcome: OutcomeTransient, kind: KindHTTP, status: 403, code: "invalid_grant", tag: "403"},
		{name: "404 wrong URL", ans: a(404, `not found`), outcome: OutcomeTransient, kind: KindHTTP, status: 404, tag: "404"},
		{name: "429 Retry-After seconds", ans: a(429, `{"error":"rate_limited"}`, "Retry-After", "120"), outcome: OutcomeTransient, kind: KindHTTP, status: 429, code: "rate_limited", retryAfter: 120 * time.Second, tag: "429"},
		{name: "429 Retry-After date", ans: a(429, ``, "Retry-After", httpDate), outcome: OutcomeTransient, kind: KindHTTP, status: 429, retryAfter: 60 * time.Second, tag: "429"},
		{name: "500", ans: a(500, `{"error":"server_error"}`), outcome: OutcomeTransient, kind: KindHTTP, status: 500, code: "server_error", tag: "500"},
		{name: "503 Retry-After", ans: a(503, `busy`, "Retry-After", "30"), outcome: OutcomeTransient, kind: KindHTTP, status: 503, retryAfter: 30 * time.Second, tag: "503"},
		{name: "hang past the timeout", ans: &answer{hang: true}, outcome: OutcomeTransient, kind: KindTimeout, tag: "timeout", short: true},
		{name: "slow headers past the timeout", ans: &answer{delay: 600 * time.Millisecond, status: 200, body: `{}`}, outcome: OutcomeTransient, kind: KindTimeout, tag: "timeout", short: true},
		{name: "reset mid-body", ans: &answer{reset: true}, outcome: OutcomeTransient, kind: KindNetwork, status: 200, tag: "network"},
		{name: "oversized body", ans: a(200, `{"access_token":"`+strings.Repeat("x", 2<<20)+`"}`), outcome: OutcomeTransient, kind: KindOversized, status: 200, tag: "oversized"},
		{name: "oversized body small cap", ans: a(500, strings.Repeat("y", 5000)), maxBody: 1000, outcome: OutcomeTransient, kind: KindOversized, status: 500, tag: "oversized"},
		{name: "307 not followed", outcome: OutcomeTransient, kind: KindRedirect, status: 307, tag: "redirect",
			redirect: func(t *testing.T, m *mockEndpoint) {
				var hits atomic.Int32
				target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
				t.Cleanup(func() {
					target.Close()
					if hits.Load() != 0 {
						t.Errorf("the redirect was followed (%d requests at the target)", hits.Load())
					}
				})
				m.push(answer{status: 307, header: map[string]string{"Location": target.URL + "/steal"}})
			}},
	}
}

// TestPassAnswerClasses: for each answer, a whole pass on an expired file:
// the exit outcome, the status file, and auth.json byte-identical on every
// failure.
func TestPassAnswerClasses(t *testing.T) {
	for _, c := range answerCases(t) {
		t.Run(c.name, func(t *testing.T) {
			now := time.Now()
			old := newCred(0, now.Add(30*time.Minute))
			orig := old.file(now.Add(-8 * 24 * time.Hour))
			h := testHome(t, orig)
			m := newMockEndpoint(t, old.Refresh, time.Now)
			if c.ans != nil {
				m.push(*c.ans)
			}
			if c.redirect != nil {
				c.redirect(t, m)
			}
			e := m.endpoint(t, c.timeout())
			if c.maxBody > 0 {
				e.MaxBody = c.maxBody
			}
			lg, _ := testLogger(t)
			w, err := New(Config{Home: h, Endpoint: e, Owner: true, Logger: lg, RecheckWindow: 30 * time.Millisecond, RecheckEvery: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			out, err := w.Pass(context.Background())
			if out != c.outcome {
				t.Fatalf("outcome %v (%v), want %v", out, err, c.outcome)
			}
			if (err != nil) != (out >= OutcomeTransient) {
				t.Fatalf("error %v with outcome %v", err, out)
			}
			if err != nil {
				noLeak(t, "pass error", err.Error())
			}
			if m.postCount() != 1 {
				t.Fatalf("%d POSTs, want 1", m.postCount())
			}
			got := readAuth(t, h)
			raw, rerr := os.ReadFile(h.StatusPath())
			if rerr != nil {
				t.Fatal(rerr)
			}
			noLeak(t, "status file", string(raw))
			st, err := ReadStatus(h)
			if err != nil {
				t.Fatal(err)
			}
			if st.OutcomeCode != int(c.outcome) || st.WatchdogLastRunISO == "" || !st.RefreshOwner || st.PID != os.Getpid() {
				t.Fatalf("status: %+v", st)
			}
			if c.outcome == OutcomeRefreshed {
				f, err := ParseAuthFile(got)
				if err != nil {
					t.Fatal(err)
				}
				if f.Tokens() != (Tokens{IDToken: m.issued.ID, AccessToken: m.issued.Access, RefreshToken: m.issued.Refresh, AccountID: "acct-1"}) {
					t.Fatal("auth.json does not hold the new tokens")
				}
				if st.WatchdogLastOutcome != "refreshed" || st.LastRefreshAgeSeconds < 0 || st.LastRefreshAgeSeconds > 5 || st.ConsecutiveFailures != 0 || st.LastErrorClass != "" {
					t.Fatalf("status after refresh: %+v", st)
				}
				if st.AccessTokenExpiresAt != m.issued.Exp.UTC().Format(time.RFC3339) {
					t.Fatalf("expiry in status %s, want %s", st.AccessTokenExpiresAt, m.issued.Exp.UTC().Format(time.RFC3339))
				}
				return
			}
			if !bytes.Equal(got, orig) {
				t.Fatalf("auth.json changed on failure:\n%s", got)
			}
			class := "transient"
			if c.outcome == OutcomePermanent {
				class = "permanent"
			}
			if st.WatchdogLastOutcome != "fail:"+class+"_"+c.tag || st.LastErrorClass != class || st.LastHTTPStatus != c.status ||
				st.LastErrorCode != c.code || st.ConsecutiveFailures != 1 {
				t.Fatalf("status after failure: %+v", st)
			}
			if c.retryAfter > 0 && st.RetryAfterSeconds < int64(c.retryAfter/time.Second) {
				t.Fatalf("retry_after_seconds %d", st.RetryAfterSeconds)
			}
			if (c.outcome == OutcomePermanent) != (st.Credential == "dead") {
				t.Fatalf("credential %q", st.Credential)
			}
		})
	}
}

func TestNetworkErrorsNameTheFailure(t *testing.T) {
	// A closed port: connection refused, said so.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	e, err := NewEndpoint(url, "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Refresh(context.Background(), "rt-"+sentinel, ReasonScheduled)
	var re *RefreshError
	if !errors.As(err, &re) || re.Class != ClassTransient || re.Kind != KindNetwork || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v", err)
	}
	// A TLS server with a certificate we do not trust.
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	e, _ = NewEndpoint(tlsSrv.URL, "", 10*time.Second)
	_, err = e.Refresh(context.Background(), "rt-"+sentinel, ReasonScheduled)
	if !errors.As(err, &re) || re.Kind != KindNetwork || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("got %v", err)
	}
	// A server whose status line echoes the request: the message must not.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		conn, buf, _ := w.(http.Hijacker).Hijack()
		buf.WriteString("HTTP/1.1 " + string(body) + " OK\r\n\r\n")
		buf.Flush()
		conn.Close()
	}))
	defer echo.Close()
	e, _ = NewEndpoint(echo.URL, "", 10*time.Second)
	_, err = e.Refresh(context.Background(), "rt-"+sentinel, ReasonScheduled)
	if !errors.As(err, &re) || re.Class != ClassTransient {
		t.Fatalf("got %v", err)
	}
	noLeak(t, "error", err.Error())
}

// TestForbiddenNamesWhoRefused: a 403 without a recognised code is a
// firewall's or proxy's answer: its error names the content type and the
// page's title, never the body, and never a title that holds the token.
func TestForbiddenNamesWhoRefused(t *testing.T) {
	rt := "rt-" + sentinel + "-0"
	for _, c := range []struct {
		name, ctype, body, want, not string
	}{
		{"html title", "text/html; charset=UTF-8", "<!DOCTYPE html><HTML><head><TITLE>\n  Attention Required! | Cloudflare\n</TITLE></head><body>" + rt + "</body>", `content type text/html, page title "Attention Required! | Cloudflare"`, "<body"},
		{"title echoing the token", "text/html", "<title>bad " + rt + "</title>", "content type text/html)", "title"},
		{"json without a code", "application/json", `{"message":"` + rt + `"}`, "content type application/json)", "message"},
		{"no content type", "", "denied", "content type none)", "denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMockEndpoint(t, rt, time.Now)
			m.push(answer{status: 403, body: c.body, header: map[string]string{"Content-Type": c.ctype}})
			_, err := m.endpoint(t, 5*time.Second).Refresh(context.Background(), rt, ReasonScheduled)
			if err == nil || isPermanent(err) {
				t.Fatalf("want a transient error, got %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), c.not) {
				t.Fatalf("error %q quotes %q", err, c.not)
			}
			noLeak(t, "error", err.Error())
		})
	}
}
