// Package tokenmock is a loopback stand-in for the OpenAI OAuth token
// endpoint (POST /oauth/token with grant_type refresh_token), faithful in the
// ways that burn real logins: refresh tokens are single-use and rotate, a
// second redemption of a spent token answers 401 refresh_token_reused, an
// unknown token answers 401 refresh_token_invalidated. It counts every POST
// (in total, per refresh token, per generation), records what each request
// carried (minus the tokens), and can be scripted to answer anything the real
// endpoint or the network might do: an error status, garbage, a hang, a reset
// in the middle of the body, a redirect, or a hold that keeps a request in
// flight until the test lets it go (to build races).
//
// It is an ordinary package, not a _test file, because the unit tests, the
// binary-level integration tests, the demo and the benchmarks all drive the
// same mock. Typical use:
//
//	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
//	defer srv.Close()
//	cred := srv.IssueWithExpiry("acct-1", time.Now().Add(time.Minute)) // about to expire
//	os.WriteFile(filepath.Join(home, "auth.json"), srv.AuthJSON(cred, time.Now()), 0o600)
//	// run the refresher with CODEX_REFRESH_TOKEN_URL_OVERRIDE=srv.URL
//	srv.Posts()          // 1
//	srv.Latest("acct-1") // the generation-1 credential the file must now hold
//
// A standalone process (a demo) uses ListenAndServe instead of Start.
package tokenmock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// ClientID is the OAuth client id of the Codex CLI, which the mock requires by
// default.
const ClientID = "app_EMoamEEZ73f0CkXaXp7hrann"

// TokenPath is the path of the token endpoint on the mock, as on
// auth.openai.com.
const TokenPath = "/oauth/token"

// Options configure a Server. The zero value is usable.
type Options struct {
	// AccessTTL is the lifetime of the access tokens the mock mints, from the
	// moment they are minted (Issue or a successful refresh). Default 1h.
	AccessTTL time.Duration
	// IDTTL is the lifetime written in id tokens. Default AccessTTL.
	IDTTL time.Duration
	// ClientID is the client_id every request must carry. Default ClientID.
	ClientID string
	// Now is the clock for exp claims. Default time.Now.
	Now func() time.Time
	// MaxBody bounds the request body read. Default 64 KiB.
	MaxBody int64
}

// Credential is one generation of an account's tokens, as the server minted
// them.
type Credential struct {
	AccountID    string
	Email        string
	Generation   int // 0 for Issue, +1 per successful refresh
	IDToken      string
	AccessToken  string
	RefreshToken string
	AccessExpiry time.Time
}

// Request is what the mock saw of one request, tokens removed.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Header http.Header
	// Fields holds the JSON body's top-level fields except refresh_token
	// (client_id, grant_type, refresh_reason, ...). Nil when the body was
	// not a JSON object.
	Fields map[string]any
	// HadRefreshToken says whether the body carried a non-empty refresh_token.
	HadRefreshToken bool
	// Account and Generation name the credential the refresh token belonged
	// to; Generation is -1 for a token the server never issued.
	Account    string
	Generation int
	// Outcome says what the mock answered: "refreshed", "reused", "invalid",
	// "bad_request", "scripted", "not_found", or "abandoned" when the client
	// or the server went away during a Delay or Wait.
	Outcome string
	// Problems lists the ways the request broke the contract (wrong content
	// type, client id, grant type, ...). Empty for a well-formed request.
	Problems []string
}

// Answer scripts the mock's reply to one request. The zero Answer is the
// default behaviour: redeem the refresh token. Delay and Wait apply before any
// answer, so Answer{Wait: ch} holds a normal refresh until ch is closed.
type Answer struct {
	// Status, when not 0, answers with this status and Body instead of
	// redeeming the token (unless Redeem is also set).
	Status int
	Body   string
	Header http.Header
	// Redeem spends the refresh token as a normal refresh would, even though
	// the client receives the scripted answer (a rotation the client never
	// saw). With Reset and no Body, the truncated body is the real success
	// body.
	Redeem bool
	// Delay waits this long before answering.
	Delay time.Duration
	// Wait waits until the channel is closed before answering.
	Wait <-chan struct{}
	// Hang never answers: the handler waits until the client goes away or
	// the server closes.
	Hang bool
	// Reset sends the status line, headers and half of the body, then
	// resets the connection.
	Reset bool
	// Redirect answers 307 (or Status, when set) with Location RedirectTo,
	// or, when RedirectTo is "", a path on the mock where a followed POST
	// would be counted (Posts counts every path).
	Redirect   bool
	RedirectTo string

	arrivedTo chan<- struct{} // set by Hold
}

// Error returns an Answer with status and the error body
// {"error":{"code":code,"message":...}} the endpoint sends.
func Error(status int, code string) Answer {
	return Answer{Status: status, Body: ErrorBody(code), Header: jsonHeader()}
}

// ErrorBody is the endpoint's error body for code.
func ErrorBody(code string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": "tokenmock: " + code}})
	return string(b)
}

// RetryAfter returns a 429 with a Retry-After header of secs seconds.
func RetryAfter(secs int) Answer {
	a := Error(http.StatusTooManyRequests, "rate_limited")
	a.Header.Set("Retry-After", fmt.Sprint(secs))
	return a
}

// Oversized returns a 200 whose body is a JSON object of about n bytes.
func Oversized(n int) Answer {
	pad := strings.Repeat("x", n)
	return Answer{Status: http.StatusOK, Body: `{"id_token":"` + pad + `"}`, Header: jsonHeader()}
}

func jsonHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return h
}

type tokenState struct {
	account string
	gen     int
	spent   bool
	posts   int
}

// Server is a running mock. All methods are safe for concurrent use.
type Server struct {
	// URL is the token endpoint (base + TokenPath): the value for
	// CODEX_REFRESH_TOKEN_URL_OVERRIDE.
	URL string
	// Base is the server root, http://127.0.0.1:PORT.
	Base string

	opts Options
	hs   *httptest.Server
	done chan struct{}

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every recorded request
	tokens   map[string]*tokenState
	latest   map[string]Credential
	secrets  []string
	posts    int
	perGen   map[int]int
	requests []Request
	script   []Answer
	serial   int
	closed   bool
	active   int // requests being handled
}

// Start starts a mock on 127.0.0.1 with an ephemeral port.
func Start(opts Options) *Server {
	s := newServer(opts)
	s.hs = httptest.NewServer(http.HandlerFunc(s.serve))
	s.setURL()
	return s
}

// ListenAndServe starts a mock on addr (host:port, loopback only: the mock
// must never be reachable from elsewhere), for standalone processes such as a
// demo. Close stops it.
func ListenAndServe(addr string, opts Options) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tokenmock: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("tokenmock: listen address %q is not loopback", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tokenmock: listen %s: %w", addr, err)
	}
	s := newServer(opts)
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.hs.Listener.Close()
	s.hs.Listener = ln
	s.hs.Start()
	s.setURL()
	return s, nil
}

func newServer(opts Options) *Server {
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = time.Hour
	}
	if opts.IDTTL <= 0 {
		opts.IDTTL = opts.AccessTTL
	}
	if opts.ClientID == "" {
		opts.ClientID = ClientID
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	return &Server{
		opts:    opts,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		tokens:  map[string]*tokenState{},
		latest:  map[string]Credential{},
		perGen:  map[int]int{},
	}
}

func (s *Server) setURL() {
	s.Base = s.hs.URL
	s.URL = s.hs.URL + TokenPath
}

// Close releases every held or hanging request and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// Issue mints a generation-0 credential for account whose access token
// expires AccessTTL from now. The server knows its refresh token.
func (s *Server) Issue(account string) Credential {
	return s.IssueWithExpiry(account, s.opts.Now().Add(s.opts.AccessTTL))
}

// IssueWithExpiry is Issue with the access token's exp set to exp (in the
// past for an expired credential).
func (s *Server) IssueWithExpiry(account string, exp time.Time) Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mintLocked(account, 0, exp)
}

func (s *Server) mintLocked(account string, gen int, accessExp time.Time) Credential {
	s.serial++
	email := account + "@example.com"
	id := mintJWT(withJTI(Claims(account, email, s.opts.Now().Add(s.opts.IDTTL)), s.serial), s.sig("id"))
	acc := Claims(account, email, accessExp)
	acc["iat"] = accessExp.Add(-s.opts.AccessTTL).Unix() // a token of AccessTTL that expires at accessExp
	acc["https://api.openai.com/profile"] = map[string]any{"email": email}
	access := mintJWT(withJTI(acc, s.serial), s.sig("ac"))
	refresh := "rt_" + Sentinel + "_" + randHex(12)
	c := Credential{
		AccountID:    account,
		Email:        email,
		Generation:   gen,
		IDToken:      id,
		AccessToken:  access,
		RefreshToken: refresh,
		AccessExpiry: time.Unix(accessExp.Unix(), 0),
	}
	s.tokens[refresh] = &tokenState{account: account, gen: gen}
	s.latest[account] = c
	s.secrets = append(s.secrets, id, access, refresh)
	return c
}

func (s *Server) sig(kind string) string {
	return Sentinel + kind + randHex(8)
}

func withJTI(m map[string]any, n int) map[string]any {
	m["jti"] = fmt.Sprintf("tokenmock-%d", n)
	return m
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("tokenmock: random: %v", err))
	}
	return hex.EncodeToString(b)
}

// Latest returns the newest credential minted for account (what auth.json
// must hold after a successful refresh), and whether there is one.
func (s *Server) Latest(account string) (Credential, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.latest[account]
	return c, ok
}

// Leaks returns a token-free description of each minted token that occurs in
// out ("refresh token gen 0 of acct-1", ...), and "sentinel" when Sentinel
// itself occurs. Empty means out is clean.
func (s *Server) Leaks(out []byte) []string {
	var found []string
	str := string(out)
	if strings.Contains(str, Sentinel) {
		found = append(found, "sentinel")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sec := range s.secrets {
		if strings.Contains(str, sec) {
			found = append(found, fmt.Sprintf("minted token #%d (%s)", i, [3]string{"id", "access", "refresh"}[i%3]))
		}
	}
	return found
}

// Spent reports whether refreshToken has been redeemed (a second
// redemption would answer refresh_token_reused). Unknown tokens are not
// spent.
func (s *Server) Spent(refreshToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tokens[refreshToken]
	return ok && st.spent
}

// Posts is the number of POST requests received, on any path.
func (s *Server) Posts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts
}

// PostsFor is the number of POSTs that presented refreshToken.
func (s *Server) PostsFor(refreshToken string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.tokens[refreshToken]; ok {
		return st.posts
	}
	return 0
}

// PostsForGeneration is the number of POSTs that presented a refresh token of
// generation gen (any account).
func (s *Server) PostsForGeneration(gen int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perGen[gen]
}

// Requests returns a copy of every recorded request, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WaitPosts blocks until at least n POSTs have arrived or ctx ends.
func (s *Server) WaitPosts(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, ch := s.posts, s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("tokenmock: %d of %d POSTs arrived: %w", got, n, ctx.Err())
		}
	}
}

// WaitIdle blocks until no request has been in the handler for quiet (a
// request whose client was killed may still be read and redeemed after the
// client died: a test that then looks at Latest must wait for it), or ctx
// ends.
func (s *Server) WaitIdle(ctx context.Context, quiet time.Duration) error {
	for {
		s.mu.Lock()
		active, ch := s.active, s.changed
		s.mu.Unlock()
		if active == 0 {
			t := time.NewTimer(quiet)
			select {
			case <-t.C:
				s.mu.Lock()
				still := s.active == 0 && s.changed == ch
				s.mu.Unlock()
				if still {
					return nil
				}
				continue
			case <-ch:
				t.Stop()
				continue
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("tokenmock: waiting for idle: %w", ctx.Err())
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("tokenmock: %d requests still in flight: %w", active, ctx.Err())
		}
	}
}

// Script queues answers for the next requests, one each, after those already
// queued. When the queue is empty the default behaviour applies.
func (s *Server) Script(answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, answers...)
}

// Pending is the number of scripted answers not yet used.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.script)
}

// Gate holds requests in flight until Release.
type Gate struct {
	release chan struct{}
	once    sync.Once
	arrived chan struct{}
}

// Arrived delivers one value per held request as it arrives.
func (g *Gate) Arrived() <-chan struct{} { return g.arrived }

// Release lets every held request proceed (now and later). Idempotent.
func (g *Gate) Release() { g.once.Do(func() { close(g.release) }) }

// Hold scripts the next n requests as normal refreshes that wait for the
// returned Gate's Release before the token is redeemed and answered.
func (s *Server) Hold(n int) *Gate {
	g := &Gate{release: make(chan struct{}), arrived: make(chan struct{}, n)}
	ans := make([]Answer, n)
	for i := range ans {
		ans[i] = Answer{Wait: g.release, arrivedTo: g.arrived}
	}
	s.Script(ans...)
	return g
}

const redirectedPath = "/redirected"

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.notifyLocked()
		s.mu.Unlock()
	}()
	req := Request{
		Time:       time.Now(),
		Method:     r.Method,
		Path:       r.URL.Path,
		Header:     r.Header.Clone(),
		Generation: -1,
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBody))
	var fields map[string]any
	refreshToken := ""
	if err := json.Unmarshal(body, &fields); err == nil && fields != nil {
		if rt, ok := fields["refresh_token"].(string); ok {
			refreshToken = rt
		}
		delete(fields, "refresh_token")
		req.Fields = fields
		req.HadRefreshToken = refreshToken != ""
	}
	req.Problems = s.check(r, fields, body)

	s.mu.Lock()
	if r.Method == http.MethodPost {
		s.posts++
	}
	if st, ok := s.tokens[refreshToken]; ok && refreshToken != "" {
		req.Account, req.Generation = st.account, st.gen
		if r.Method == http.MethodPost {
			st.posts++
			s.perGen[st.gen]++
		}
	}
	var ans Answer
	scripted := false
	if r.URL.Path == TokenPath && r.Method == http.MethodPost && len(req.Problems) == 0 && len(s.script) > 0 {
		ans, s.script = s.script[0], s.script[1:]
		scripted = true
	}
	idx := len(s.requests)
	s.requests = append(s.requests, req)
	s.notifyLocked()
	s.mu.Unlock()

	setOutcome := func(o string) {
		s.mu.Lock()
		s.requests[idx].Outcome = o
		s.mu.Unlock()
	}

	switch {
	case r.URL.Path != TokenPath:
		setOutcome("not_found")
		http.Error(w, "tokenmock: no such path", http.StatusNotFound)
		return
	case r.Method != http.MethodPost:
		setOutcome("bad_request")
		http.Error(w, "tokenmock: POST only", http.StatusMethodNotAllowed)
		return
	case len(req.Problems) > 0:
		setOutcome("bad_request")
		writeJSON(w, http.StatusBadRequest, nil, `{"error":{"code":"invalid_request","message":"tokenmock: `+strings.Join(req.Problems, "; ")+`"}}`)
		return
	}

	if ans.arrivedTo != nil {
		select {
		case ans.arrivedTo <- struct{}{}:
		default:
		}
	}
	if !s.wait(r.Context(), ans) {
		setOutcome("abandoned")
		return
	}

	if !scripted || (ans.Status == 0 && !ans.Hang && !ans.Reset && !ans.Redirect && ans.RedirectTo == "") {
		status, hdr, out, outcome := s.redeem(refreshToken)
		setOutcome(outcome)
		writeJSON(w, status, hdr, out)
		return
	}

	setOutcome("scripted")
	var redeemed string
	if ans.Redeem {
		_, _, redeemed, _ = s.redeem(refreshToken)
	}
	switch {
	case ans.Hang:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
	case ans.Reset:
		b := ans.Body
		if b == "" {
			b = redeemed
		}
		if b == "" {
			b = `{"id_token":"` + strings.Repeat("x", 64) + `"}`
		}
		status := ans.Status
		if status == 0 {
			status = http.StatusOK
		}
		resetMidBody(w, status, b)
	case ans.Redirect || ans.RedirectTo != "":
		loc := ans.RedirectTo
		if loc == "" {
			loc = s.Base + redirectedPath
		}
		h := ans.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Location", loc)
		status := ans.Status
		if status == 0 {
			status = http.StatusTemporaryRedirect
		}
		writeJSON(w, status, h, ans.Body)
	default:
		writeJSON(w, ans.Status, ans.Header, ans.Body)
	}
}

// wait applies an answer's Delay and Wait; false when the client or the
// server went away first.
func (s *Server) wait(ctx context.Context, a Answer) bool {
	if a.Delay > 0 {
		t := time.NewTimer(a.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		case <-s.done:
			return false
		}
	}
	if a.Wait != nil {
		select {
		case <-a.Wait:
		case <-ctx.Done():
			return false
		case <-s.done:
			return false
		}
	}
	return true
}

// check lists how a request breaks the token endpoint's contract.
func (s *Server) check(r *http.Request, fields map[string]any, body []byte) []string {
	if r.URL.Path != TokenPath || r.Method != http.MethodPost {
		return nil
	}
	var p []string
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		p = append(p, fmt.Sprintf("content type %q, want application/json", r.Header.Get("Content-Type")))
	}
	if fields == nil {
		p = append(p, fmt.Sprintf("body is not a JSON object (%d bytes)", len(body)))
		return p
	}
	if got, _ := fields["client_id"].(string); got != s.opts.ClientID {
		p = append(p, fmt.Sprintf("client_id %q, want %q", got, s.opts.ClientID))
	}
	if got, _ := fields["grant_type"].(string); got != "refresh_token" {
		p = append(p, fmt.Sprintf("grant_type %q, want refresh_token", got))
	}
	return p
}

// redeem spends refreshToken: the next generation's tokens on success, 401
// refresh_token_reused for a spent token, 401 refresh_token_invalidated for
// an unknown one.
func (s *Server) redeem(refreshToken string) (int, http.Header, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tokens[refreshToken]
	switch {
	case refreshToken == "" || !ok:
		return http.StatusUnauthorized, jsonHeader(), ErrorBody("refresh_token_invalidated"), "invalid"
	case st.spent:
		return http.StatusUnauthorized, jsonHeader(), ErrorBody("refresh_token_reused"), "reused"
	}
	st.spent = true
	c := s.mintLocked(st.account, st.gen+1, s.opts.Now().Add(s.opts.AccessTTL))
	b, _ := json.Marshal(map[string]string{
		"id_token":      c.IDToken,
		"access_token":  c.AccessToken,
		"refresh_token": c.RefreshToken,
	})
	return http.StatusOK, jsonHeader(), string(b), "refreshed"
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func writeJSON(w http.ResponseWriter, status int, h http.Header, body string) {
	for k, vs := range h {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if w.Header().Get("Content-Type") == "" && body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// resetMidBody announces the whole body, sends half of it and resets the
// connection, as a proxy or a network failure would.
func resetMidBody(w http.ResponseWriter, status int, body string) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("tokenmock: response writer cannot be hijacked")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", status, http.StatusText(status), len(body))
	_, _ = buf.WriteString(body[:len(body)/2])
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST, not FIN
	}
}
