package authwatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// sentinel is in every token the tests make (refresh tokens literally, JWTs in
// their signature part), so a token that leaks anywhere is found by a plain
// substring search of logs, errors and files.
const sentinel = "SENTINELtok"

func b64(v []byte) string { return base64.RawURLEncoding.EncodeToString(v) }

// mintJWT makes an unsigned JWT with the given claims.
func mintJWT(claims map[string]any) string {
	c, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(c) + "." + sentinel + "sig"
}

func accessJWT(exp time.Time) string {
	return mintJWT(map[string]any{"exp": exp.Unix(), authClaim: map[string]any{"chatgpt_account_id": "acct-1"}})
}

func idJWT(exp time.Time) string {
	return mintJWT(map[string]any{"exp": exp.Unix(), "email": "dev@example.com",
		authClaim: map[string]any{"chatgpt_account_id": "acct-1", "chatgpt_plan_type": "pro", "chatgpt_user_id": "user-1"}})
}

// cliFile writes an auth.json the way the CLI 0.169 does.
func cliFile(mode string, idTok, access, refresh, account string, lastRefresh time.Time, extra string) []byte {
	var b strings.Builder
	b.WriteString("{\n")
	if mode != "" {
		fmt.Fprintf(&b, "  \"auth_mode\": %q,\n", mode)
	}
	b.WriteString("  \"OPENAI_API_KEY\": null,\n")
	fmt.Fprintf(&b, "  \"tokens\": {\n    \"id_token\": %q,\n    \"access_token\": %q,\n    \"refresh_token\": %q,\n    \"account_id\": %q\n  },\n",
		idTok, access, refresh, account)
	fmt.Fprintf(&b, "  \"last_refresh\": %q", FormatTimestamp(lastRefresh))
	b.WriteString(extra)
	b.WriteString("\n}")
	return []byte(b.String())
}

// cred is one generation of a test credential.
type cred struct {
	ID, Access, Refresh string
	Exp                 time.Time
}

func newCred(gen int, exp time.Time) cred {
	return cred{ID: idJWT(exp), Access: accessJWT(exp), Refresh: fmt.Sprintf("rt-%s-%d", sentinel, gen), Exp: exp}
}

func (c cred) file(lastRefresh time.Time) []byte {
	return cliFile("chatgpt", c.ID, c.Access, c.Refresh, "acct-1", lastRefresh, "")
}

// testHome makes a CODEX_HOME with auth.json holding data (nil: no file).
func testHome(t *testing.T, data []byte) Home {
	t.Helper()
	dir := t.TempDir()
	if data != nil {
		if err := os.WriteFile(filepath.Join(dir, AuthFileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Home{Dir: dir, LockTimeout: 2 * time.Second}
}

func readAuth(t *testing.T, h Home) []byte {
	t.Helper()
	data, err := os.ReadFile(h.AuthPath())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// logBuf captures a logger's output and checks it for token leaks when the
// test ends.
type logBuf struct {
	mu    sync.Mutex
	b     bytes.Buffer
	hooks []lineHook
}

// lineHook lets a test act at the moment the code under test logs a line:
// a point in a pass that no other seam reaches.
type lineHook struct {
	substr string
	fn     func()
}

// onLine runs fn synchronously, in the logging goroutine, after each line
// that contains substr has been captured.
func (l *logBuf) onLine(substr string, fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hooks = append(l.hooks, lineHook{substr: substr, fn: fn})
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	hooks := l.hooks
	l.mu.Unlock()
	for _, h := range hooks {
		if bytes.Contains(p, []byte(h.substr)) {
			h.fn()
		}
	}
	return n, err
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) (hclog.Logger, *logBuf) {
	t.Helper()
	buf := &logBuf{}
	lg := hclog.New(&hclog.LoggerOptions{Name: "test", Output: buf, Level: hclog.Trace})
	t.Cleanup(func() {
		noLeak(t, "log", buf.String())
		if testing.Verbose() {
			t.Logf("captured log:\n%s", buf.String())
		}
	})
	return lg, buf
}

// noLeak fails when s holds a token.
func noLeak(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, sentinel) {
		t.Errorf("%s holds a token:\n%s", what, s)
	}
}

// answer is one scripted reply of the mock endpoint.
type answer struct {
	status int
	body   string
	header map[string]string
	delay  time.Duration
	hang   bool // never answer (until the client gives up)
	reset  bool // send headers and part of a body, then reset the connection
}

// mockEndpoint is a loopback token endpoint: scripted answers first, then
// single-use rotation of the refresh token it knows.
type mockEndpoint struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	script   []answer
	posts    int
	bodies   []map[string]string
	current  string // the refresh token that is valid now
	gen      int
	accessIn time.Duration
	now      func() time.Time
	issued   cred
	onPost   func() // runs inside the handler, before answering
}

func newMockEndpoint(t *testing.T, current string, now func() time.Time) *mockEndpoint {
	m := &mockEndpoint{t: t, current: current, accessIn: 8 * 24 * time.Hour, now: now, gen: 100}
	m.srv = httptest.NewServer(http.HandlerFunc(m.handle))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mockEndpoint) push(a ...answer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.script = append(m.script, a...)
}

func (m *mockEndpoint) postCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.posts
}

func (m *mockEndpoint) endpoint(t *testing.T, timeout time.Duration) *Endpoint {
	t.Helper()
	e, err := NewEndpoint(m.srv.URL+"/oauth/token", "", timeout)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (m *mockEndpoint) handle(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	var body map[string]string
	_ = json.Unmarshal(data, &body)
	m.mu.Lock()
	m.posts++
	m.bodies = append(m.bodies, body)
	var a *answer
	if len(m.script) > 0 {
		a = &m.script[0]
		m.script = m.script[1:]
	}
	hook := m.onPost
	m.mu.Unlock()
	if hook != nil {
		hook()
	}
	if a != nil {
		m.serveScripted(w, r, *a)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if body["refresh_token"] != m.current || m.current == "" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"refresh_token_reused","message":"rejected `+body["refresh_token"]+`"}}`)
		return
	}
	m.gen++
	c := newCred(m.gen, m.now().Add(m.accessIn))
	m.current = c.Refresh
	m.issued = c
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"id_token": c.ID, "access_token": c.Access, "refresh_token": c.Refresh})
}

func (m *mockEndpoint) serveScripted(w http.ResponseWriter, r *http.Request, a answer) {
	if a.delay > 0 {
		time.Sleep(a.delay)
	}
	if a.hang {
		<-r.Context().Done()
		return
	}
	if a.reset {
		hj, ok := w.(http.Hijacker)
		if !ok {
			m.t.Error("no hijacker")
			return
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			m.t.Error(err)
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"access_token\": \"")
		buf.Flush()
		if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
			tc.SetLinger(0) // RST instead of FIN
		}
		conn.Close()
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	status := a.status
	if status == 0 {
		status = 200
	}
	w.WriteHeader(status)
	io.WriteString(w, a.body)
}

// fakeClock is a deterministic clock: Sleep advances time instantly.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
	// onSleep runs after each sleep with the new time (outside the lock).
	onSleep func(now time.Time)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	now, hook := c.t, c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook(now)
	}
	return ctx.Err()
}

// rejectedLogin is a refresh owner whose auth.json (orig) is due and holds a
// refresh token the endpoint refuses for good (401 reused).
func rejectedLogin(t *testing.T, now time.Time) (*Watchdog, Home, *mockEndpoint, []byte) {
	orig := newCred(0, now.Add(time.Minute)).file(now.Add(-time.Hour))
	h := testHome(t, orig)
	m := newMockEndpoint(t, "someone-else", time.Now)
	lg, _ := testLogger(t)
	w, err := New(Config{Home: h, Endpoint: m.endpoint(t, time.Second), Owner: true, Logger: lg, RecheckWindow: 20 * time.Millisecond, RecheckEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return w, h, m, orig
}

// isPermanent reports whether err says the refresh token is dead.
func isPermanent(err error) bool {
	var re *RefreshError
	return errors.As(err, &re) && re.Class == ClassPermanent
}
