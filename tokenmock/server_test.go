package tokenmock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
	err    error
}

func post(t *testing.T, url string, body map[string]any) reply {
	t.Helper()
	b, _ := json.Marshal(body)
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw), err: err}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func refreshBody(rt string) map[string]any {
	return map[string]any{"client_id": ClientID, "grant_type": "refresh_token", "refresh_token": rt, "refresh_reason": "scheduled"}
}

func errCode(r reply) string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestRotationAndReuse(t *testing.T) {
	s := Start(Options{AccessTTL: 30 * time.Minute})
	defer s.Close()
	c0 := s.Issue("acct-1")

	if s.Spent(c0.RefreshToken) {
		t.Fatal("a fresh token is spent")
	}
	r := post(t, s.URL, refreshBody(c0.RefreshToken))
	if r.status != 200 {
		t.Fatalf("first redemption: status %d %s", r.status, r.raw)
	}
	if !s.Spent(c0.RefreshToken) {
		t.Fatal("a redeemed token is not spent")
	}
	c1, ok := s.Latest("acct-1")
	if !ok || c1.Generation != 1 {
		t.Fatalf("latest = %+v, %v; want generation 1", c1, ok)
	}
	for k, want := range map[string]string{"id_token": c1.IDToken, "access_token": c1.AccessToken, "refresh_token": c1.RefreshToken} {
		if r.body[k] != want {
			t.Errorf("response %s differs from Latest", k)
		}
	}
	if c1.RefreshToken == c0.RefreshToken || c1.AccessToken == c0.AccessToken || c1.IDToken == c0.IDToken {
		t.Errorf("tokens did not rotate")
	}
	claims, err := DecodeClaims(c1.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	if d := time.Until(exp); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("access exp in %v, want ~30m", d)
	}

	r = post(t, s.URL, refreshBody(c0.RefreshToken))
	if r.status != 401 || errCode(r) != "refresh_token_reused" {
		t.Errorf("second redemption: %d %q, want 401 refresh_token_reused", r.status, errCode(r))
	}
	r = post(t, s.URL, refreshBody("rt_unknown"))
	if r.status != 401 || errCode(r) != "refresh_token_invalidated" {
		t.Errorf("unknown token: %d %q, want 401 refresh_token_invalidated", r.status, errCode(r))
	}
	r = post(t, s.URL, refreshBody(c1.RefreshToken))
	if r.status != 200 {
		t.Errorf("generation-1 token: %d", r.status)
	}

	if got := s.Posts(); got != 4 {
		t.Errorf("Posts = %d, want 4", got)
	}
	if got := s.PostsFor(c0.RefreshToken); got != 2 {
		t.Errorf("PostsFor(gen0) = %d, want 2", got)
	}
	if got := s.PostsForGeneration(0); got != 2 {
		t.Errorf("PostsForGeneration(0) = %d, want 2", got)
	}
	if got := s.PostsForGeneration(1); got != 1 {
		t.Errorf("PostsForGeneration(1) = %d, want 1", got)
	}
	reqs := s.Requests()
	outcomes := []string{}
	for _, q := range reqs {
		outcomes = append(outcomes, q.Outcome)
		if _, ok := q.Fields["refresh_token"]; ok {
			t.Errorf("recorded request kept the refresh token")
		}
		if q.Fields["refresh_reason"] != "scheduled" {
			t.Errorf("refresh_reason not recorded: %v", q.Fields)
		}
	}
	if got := strings.Join(outcomes, ","); got != "refreshed,reused,invalid,refreshed" {
		t.Errorf("outcomes = %s", got)
	}
}

func TestContractViolationsAreRefused(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	cases := []struct {
		name string
		body map[string]any
		ct   string
	}{
		{"client id", map[string]any{"client_id": "other", "grant_type": "refresh_token", "refresh_token": c.RefreshToken}, "application/json"},
		{"grant type", map[string]any{"client_id": ClientID, "grant_type": "password", "refresh_token": c.RefreshToken}, "application/json"},
		{"content type", refreshBody(c.RefreshToken), "application/x-www-form-urlencoded"},
	}
	for _, tc := range cases {
		b, _ := json.Marshal(tc.body)
		resp, err := http.Post(s.URL, tc.ct, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", tc.name, resp.StatusCode)
		}
	}
	for _, q := range s.Requests() {
		if len(q.Problems) == 0 {
			t.Errorf("request without problems recorded for a bad request")
		}
	}
	// The token was never spent by a refused request.
	if r := post(t, s.URL, refreshBody(c.RefreshToken)); r.status != 200 {
		t.Errorf("valid request after refusals: %d", r.status)
	}
}

func TestScriptedAnswers(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	s.Script(
		Error(400, "invalid_grant"),
		RetryAfter(7),
		Answer{Status: 200, Body: "not json"},
		Answer{Redirect: true},
		Answer{Reset: true},
	)
	r := post(t, s.URL, refreshBody(c.RefreshToken))
	if r.status != 400 || errCode(r) != "invalid_grant" {
		t.Errorf("scripted 400: %d %q", r.status, errCode(r))
	}
	r = post(t, s.URL, refreshBody(c.RefreshToken))
	if r.status != 429 || r.header.Get("Retry-After") != "7" {
		t.Errorf("scripted 429: %d retry-after %q", r.status, r.header.Get("Retry-After"))
	}
	r = post(t, s.URL, refreshBody(c.RefreshToken))
	if r.status != 200 || r.raw != "not json" {
		t.Errorf("scripted garbage: %d %q", r.status, r.raw)
	}
	r = post(t, s.URL, refreshBody(c.RefreshToken))
	if r.status != 307 || r.header.Get("Location") != s.Base+redirectedPath {
		t.Errorf("scripted redirect: %d %q", r.status, r.header.Get("Location"))
	}
	r = post(t, s.URL, refreshBody(c.RefreshToken))
	if r.err == nil {
		t.Errorf("reset mid-body: got a complete reply %d %q", r.status, r.raw)
	}
	if s.Pending() != 0 {
		t.Errorf("pending = %d", s.Pending())
	}
	// None of the scripted answers spent the token.
	if r := post(t, s.URL, refreshBody(c.RefreshToken)); r.status != 200 {
		t.Errorf("default after script: %d", r.status)
	}
}

func TestRedeemWithLostReply(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	s.Script(Answer{Reset: true, Redeem: true})
	if r := post(t, s.URL, refreshBody(c.RefreshToken)); r.err == nil {
		t.Fatalf("want a transport error, got %d", r.status)
	}
	if l, _ := s.Latest("a"); l.Generation != 1 {
		t.Errorf("token not spent by Redeem: generation %d", l.Generation)
	}
	if r := post(t, s.URL, refreshBody(c.RefreshToken)); errCode(r) != "refresh_token_reused" {
		t.Errorf("retry after lost reply: %q, want refresh_token_reused", errCode(r))
	}
}

func TestHangEndsWithClient(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	s.Script(Answer{Hang: true})
	b, _ := json.Marshal(refreshBody(c.RefreshToken))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: err = %v, want deadline exceeded", err)
	}
}

func TestHoldBuildsARace(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	g := s.Hold(2)
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	for i := range replies {
		wg.Add(1)
		go func() { defer wg.Done(); replies[i] = post(t, s.URL, refreshBody(c.RefreshToken)) }()
	}
	for range 2 {
		select {
		case <-g.Arrived():
		case <-time.After(5 * time.Second):
			t.Fatal("held requests did not arrive")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitPosts(ctx, 2); err != nil {
		t.Fatal(err)
	}
	g.Release()
	wg.Wait()
	got := map[int]int{}
	for _, r := range replies {
		got[r.status]++
	}
	if got[200] != 1 || got[401] != 1 {
		t.Errorf("two redemptions of one token: statuses %v, want one 200 and one 401", got)
	}
	if s.PostsForGeneration(0) != 2 {
		t.Errorf("PostsForGeneration(0) = %d", s.PostsForGeneration(0))
	}
}

// TestCloseReleasesHeldRequests: one request held by a Gate, one hanging;
// Close returns at once and both clients get their (failed) answer.
func TestCloseReleasesHeldRequests(t *testing.T) {
	s := Start(Options{})
	c := s.Issue("a")
	s.Hold(1)
	s.Script(Answer{Hang: true})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, s.URL, refreshBody(c.RefreshToken))
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitPosts(ctx, 2); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	// Well below post's 5 s client timeout: a Close that waited for the
	// requests would be let go by the clients giving up, and pass.
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close blocked on a held request")
	}
	<-done
}

func TestLeaks(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	if l := s.Leaks([]byte("clean output acct a")); len(l) != 0 {
		t.Errorf("clean output reported leaks: %v", l)
	}
	l := s.Leaks([]byte("oops " + c.RefreshToken))
	if len(l) != 2 || l[0] != "sentinel" || !strings.Contains(l[1], "refresh") {
		t.Errorf("Leaks = %v", l)
	}
	for _, tok := range []string{c.IDToken, c.AccessToken, c.RefreshToken} {
		if !strings.Contains(tok, Sentinel) {
			t.Errorf("a minted token lacks the sentinel")
		}
		if strings.Contains(tok, "\n") {
			t.Errorf("token has a newline")
		}
	}
}

func TestListenAndServeRefusesNonLoopback(t *testing.T) {
	if _, err := ListenAndServe("0.0.0.0:0", Options{}); err == nil {
		t.Fatal("listening on all interfaces was allowed")
	}
	s, err := ListenAndServe("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Issue("a")
	if r := post(t, s.URL, refreshBody(c.RefreshToken)); r.status != 200 {
		t.Errorf("standalone server: %d", r.status)
	}
}

func TestWaitIdle(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	c := s.Issue("a")
	g := s.Hold(1)
	done := make(chan reply, 1)
	go func() { done <- post(t, s.URL, refreshBody(c.RefreshToken)) }()
	<-g.Arrived()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.WaitIdle(ctx, 10*time.Millisecond); err == nil {
		t.Fatal("WaitIdle returned with a request held")
	}
	g.Release()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := s.WaitIdle(ctx2, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Latest("a"); l.Generation != 1 {
		t.Errorf("idle before the held request was redeemed")
	}
	<-done
}
