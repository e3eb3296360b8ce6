package authwatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// The CLI's token endpoint and OAuth client. cmd reads the CLI's overrides
// (CODEX_REFRESH_TOKEN_URL_OVERRIDE, CODEX_APP_SERVER_LOGIN_CLIENT_ID) and
// passes them to NewEndpoint.
const (
	DefaultTokenURL = "https://auth.openai.com/oauth/token"
	DefaultClientID = "app_EMoamEEZ73f0CkXaXp7hrann"
	DefaultTimeout  = 30 * time.Second
	// DefaultMaxBody caps a response: a real token response is a few KiB; a
	// proxy's error page or a hostile server must not fill memory.
	DefaultMaxBody = 1 << 20
)

// Refresh reasons the CLI sends in refresh_reason.
const (
	ReasonScheduled       = "scheduled"
	ReasonProactiveExpiry = "proactive_expiry"
	ReasonForced          = "forced"
)

// TokenResponse is what a successful refresh returned. An empty field was not
// in the response and keeps its old value (Apply).
type TokenResponse struct{ IDToken, AccessToken, RefreshToken string }

// Class says what a failed refresh means for the credential.
type Class int

const (
	// ClassTransient: the credential is still good; try again later.
	ClassTransient Class = iota + 1
	// ClassPermanent: the refresh token is dead until someone logs in again.
	ClassPermanent
)

func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassPermanent:
		return "permanent"
	}
	return "unknown"
}

// Kinds of failure, for logs and the status file.
const (
	KindHTTP         = "http"          // a non-2xx answer
	KindTimeout      = "timeout"       // no complete answer within the timeout
	KindNetwork      = "network"       // connect failure, reset, DNS, TLS
	KindRedirect     = "redirect"      // a 3xx: never followed (the body carries the token)
	KindOversized    = "oversized"     // body larger than the cap
	KindBadBody      = "bad_body"      // 2xx whose body is not a JSON object of strings
	KindBadIDToken   = "bad_id_token"  // 2xx whose id_token is not a JWT
	KindLockTimeout  = "lock_timeout"  // a CLI lock never came
	KindCommit       = "commit"        // the answer arrived but is not in auth.json yet (rescued)
	KindCannotCommit = "cannot_commit" // before any POST: the answer could not be written
	KindCanceled     = "canceled"      // shutdown before the POST was sent
	KindUnreadable   = "unreadable"    // auth.json is there but cannot be read or parsed
	KindLoad         = "load"          // the store could not be read
	KindStore        = "store"         // the store failed otherwise
	KindDeadToken    = "dead_token"    // the refresh token was already refused for good
)

// RefreshError is a failed refresh. Its message carries the class, the HTTP
// status, the OAuth error code and a kind, never a token and never the
// response body (a body may echo the token it rejected).
type RefreshError struct {
	Class      Class
	Status     int    // HTTP status, 0 when there was no answer
	Code       string // OAuth error code from the body, sanitised
	Kind       string // one of the Kind constants
	RetryAfter time.Duration
	Err        error // the cause, token-free; may be nil
}

func (e *RefreshError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token refresh failed (%s, %s", e.Class, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, ", http %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ", code %s", e.Code)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	b.WriteString(")")
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *RefreshError) Unwrap() error { return e.Err }

// Endpoint is the OAuth token endpoint client.
type Endpoint struct {
	URL      *url.URL
	ClientID string
	Timeout  time.Duration
	MaxBody  int64
	// Now reads the clock for HTTP-date Retry-After values.
	Now func() time.Time

	// The client is built on the first POST: most passes send none, and a
	// one-shot `refresh --once` that finds the credential fresh should not
	// pay for cloning a transport.
	clientOnce sync.Once
	client     *http.Client
}

// CheckTokenURL refuses a token endpoint URL that NewEndpoint would refuse:
// the request body carries a refresh token, so it goes over https, or plain
// http only to a loopback host, and the URL itself carries no credentials.
// The configuration calls it too, so that a bad URL is a usage error at
// start-up rather than a watchdog that fails for ever. Its errors never
// quote the URL's user information.
func CheckTokenURL(rawURL string) (*url.URL, error) {
	u, err := secreturl.Parse(rawURL)
	if errors.Is(err, secreturl.ErrSplitUserInfo) {
		return nil, fmt.Errorf("token endpoint URL must not carry credentials: %w", err)
	}
	if err != nil {
		// url.Parse's error quotes the whole input: leave it out.
		return nil, errors.New("token endpoint URL is not a URL")
	}
	if u.Host == "" {
		return nil, fmt.Errorf("token endpoint URL %q has no host", secreturl.Redact(u))
	}
	if u.User != nil {
		return nil, fmt.Errorf("token endpoint URL must not carry credentials")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !secreturl.IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("token endpoint URL %q: plain http is allowed only for a loopback host (the request carries a refresh token)", secreturl.Redact(u))
		}
	default:
		return nil, fmt.Errorf("token endpoint URL %q: scheme must be https", secreturl.Redact(u))
	}
	return u, nil
}

// NewEndpoint checks the URL and builds the client. An empty URL or client id
// means the CLI's defaults; timeout <= 0 means 30 s. Plain http is refused
// unless the host is loopback (a test mock): the request body is a refresh
// token. Proxies come from the environment (HTTPS_PROXY, NO_PROXY, ...), as in
// the CLI; redirects are never followed.
func NewEndpoint(rawURL, clientID string, timeout time.Duration) (*Endpoint, error) {
	if rawURL == "" {
		rawURL = DefaultTokenURL
	}
	if clientID == "" {
		clientID = DefaultClientID
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	u, err := CheckTokenURL(rawURL)
	if err != nil {
		return nil, err
	}
	return &Endpoint{
		URL:      u,
		ClientID: clientID,
		Timeout:  timeout,
		MaxBody:  DefaultMaxBody,
		Now:      time.Now,
	}, nil
}

// httpClient is the client of every POST: proxies from the environment, the
// timeout also bounding the wait for response headers, redirects never
// followed.
func (e *Endpoint) httpClient() *http.Client {
	e.clientOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyFromEnvironment
		tr.ResponseHeaderTimeout = e.Timeout
		e.client = &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	})
	return e.client
}

// String is the endpoint for logs (no query string).
func (e *Endpoint) String() string { return secreturl.Redact(e.URL) }

type refreshRequest struct {
	ClientID      string `json:"client_id"`
	GrantType     string `json:"grant_type"`
	RefreshToken  string `json:"refresh_token"`
	RefreshReason string `json:"refresh_reason,omitempty"`
}

// Refresh redeems refreshToken once and classifies the answer as the CLI
// does. A 2xx whose body is not a JSON object, holds non-string token fields
// or an id_token that is not a JWT is transient (the caller changes nothing).
// Permanent: 401, a 400 invalid_grant, and a recognised refresh_token_* code
// whatever the status. Everything else is transient: 429 and 5xx (with
// Retry-After), 408, timeouts, network errors, 3xx (never followed),
// oversized bodies, and any other 4xx: a 403 without a recognised code is a
// firewall's or proxy's page, and a 400/404/415 without one says the request
// or the URL is wrong; neither means the token is dead, so it is kept and
// the attempt retried with backoff. The error of a 403 names the answer's
// content type and, for HTML, its title, so that the operator can tell who
// refused.
func (e *Endpoint) Refresh(ctx context.Context, refreshToken, reason string) (TokenResponse, error) {
	body, err := json.Marshal(refreshRequest{
		ClientID: e.ClientID, GrantType: "refresh_token", RefreshToken: refreshToken, RefreshReason: reason,
	})
	if err != nil {
		return TokenResponse{}, &RefreshError{Class: ClassTransient, Kind: KindBadBody, Err: errors.New("encoding the request")}
	}
	ctx, cancel := context.WithTimeout(ctx, e.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL.String(), bytes.NewReader(body))
	if err != nil {
		return TokenResponse{}, &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("building the request")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "codex-launch")
	resp, err := e.httpClient().Do(req)
	if err != nil {
		return TokenResponse{}, transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, e.maxBody()+1))
	if err != nil {
		re := transportError(ctx, err)
		re.Status = resp.StatusCode
		return TokenResponse{}, re
	}
	if int64(len(data)) > e.maxBody() {
		return TokenResponse{}, &RefreshError{Class: ClassTransient, Kind: KindOversized, Status: resp.StatusCode,
			Err: fmt.Errorf("response body larger than %d bytes", e.maxBody())}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		tr, err := parseTokenResponse(data)
		if err != nil {
			return TokenResponse{}, err.withStatus(resp.StatusCode)
		}
		return tr, nil
	}
	re := classifyHTTP(resp.StatusCode, resp.Header.Get("Retry-After"), data, e.now())
	if re.Class == ClassTransient && resp.StatusCode == http.StatusForbidden {
		re.Err = describeRefusal(resp.Header.Get("Content-Type"), data, refreshToken)
	}
	return TokenResponse{}, re
}

func (e *Endpoint) maxBody() int64 {
	if e.MaxBody <= 0 {
		return DefaultMaxBody
	}
	return e.MaxBody
}

func (e *Endpoint) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

func (re *RefreshError) withStatus(s int) *RefreshError { re.Status = s; return re }

// transportError turns a client error into a transient RefreshError whose
// message names only the kind of failure (net/http errors quote the URL,
// which is fine, but nothing of the exchange).
func transportError(ctx context.Context, err error) *RefreshError {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return &RefreshError{Class: ClassTransient, Kind: KindTimeout, Err: errors.New("no complete answer within the timeout")}
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return &RefreshError{Class: ClassTransient, Kind: KindCanceled, Err: context.Canceled}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("connection reset or closed mid-answer")}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("connection refused")}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("name resolution failed")}
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
		return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("TLS certificate verification failed")}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		var errno syscall.Errno
		if errors.As(opErr.Err, &errno) {
			return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: fmt.Errorf("connecting: %s", errno.Error())}
		}
		return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("connecting failed")}
	}
	// Other messages are not passed on: some quote what the server sent
	// (a malformed status line may echo the request's token).
	return &RefreshError{Class: ClassTransient, Kind: KindNetwork, Err: errors.New("network error")}
}

// parseTokenResponse validates a 2xx body the way the CLI does before it
// adopts anything.
func parseTokenResponse(data []byte) (TokenResponse, *RefreshError) {
	bad := func(why string) (TokenResponse, *RefreshError) {
		return TokenResponse{}, &RefreshError{Class: ClassTransient, Kind: KindBadBody, Err: errors.New(why)}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return bad("2xx body is not a JSON object")
	}
	var tr TokenResponse
	for key, dst := range map[string]*string{"id_token": &tr.IDToken, "access_token": &tr.AccessToken, "refresh_token": &tr.RefreshToken} {
		v, ok := raw[key]
		if !ok || isJSONNull(v) {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return bad("2xx body: " + key + " is not a string")
		}
	}
	if tr.IDToken != "" {
		if _, err := ParseJWT(tr.IDToken); err != nil {
			return TokenResponse{}, &RefreshError{Class: ClassTransient, Kind: KindBadIDToken, Err: errors.New("2xx body: id_token is not a JWT")}
		}
	}
	return tr, nil
}

// permanentCodes are the OAuth error codes that mean the refresh token is
// dead whatever the HTTP status (the CLI treats them so). invalid_grant is
// permanent only with a 400, its OAuth status.
var permanentCodes = map[string]bool{
	"refresh_token_expired":     true,
	"refresh_token_reused":      true,
	"refresh_token_invalidated": true,
}

// safeCode reports whether s looks like an OAuth error code: 1 to 64 of
// [A-Za-z0-9_.:-]. Plain code rather than a package-level regexp, which
// every start of the binary (each HEALTHCHECK too) would compile for a check
// that runs only on an error answer.
func safeCode(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// errorCode reads the code as the CLI does: error.code, a string error, or a
// top-level code. Anything that does not look like a code is replaced, so a
// body cannot smuggle text (or a token) into a log line.
func errorCode(data []byte) string {
	var body struct {
		Error json.RawMessage `json:"error"`
		Code  json.RawMessage `json:"code"`
	}
	if json.Unmarshal(data, &body) != nil {
		return ""
	}
	var code string
	if len(body.Error) > 0 {
		var s string
		var obj struct {
			Code json.RawMessage `json:"code"`
		}
		if json.Unmarshal(body.Error, &s) == nil {
			code = s
		} else if json.Unmarshal(body.Error, &obj) == nil && len(obj.Code) > 0 {
			_ = json.Unmarshal(obj.Code, &code)
		}
	}
	if code == "" && len(body.Code) > 0 {
		_ = json.Unmarshal(body.Code, &code)
	}
	if code == "" {
		return ""
	}
	if !safeCode(code) {
		return "unrecognized"
	}
	return code
}

func classifyHTTP(status int, retryAfter string, data []byte, now time.Time) *RefreshError {
	re := &RefreshError{Class: ClassTransient, Kind: KindHTTP, Status: status, Code: errorCode(data)}
	switch {
	case permanentCodes[re.Code],
		status == http.StatusUnauthorized,
		status == http.StatusBadRequest && re.Code == "invalid_grant":
		re.Class = ClassPermanent
	case status >= 300 && status < 400:
		re.Kind = KindRedirect
		re.Err = errors.New("redirect not followed")
	case status == http.StatusTooManyRequests, status >= 500:
		re.RetryAfter = parseRetryAfter(retryAfter, now)
	}
	return re
}

// maxTitle bounds the HTML title an error quotes.
const maxTitle = 80

// describeRefusal names what answered a refusal without a recognised code:
// the content type and, for an HTML page, its <title>, sanitised to
// printable text, bounded, and withheld whole if it holds the refresh token
// that was sent. Nothing else of the body is quoted.
func describeRefusal(contentType string, body []byte, refreshToken string) error {
	ct := contentType
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		ct = mt
	}
	if ct == "" {
		ct = "none"
	} else if !safeCode(strings.ReplaceAll(ct, "/", ".")) {
		ct = "unrecognized"
	}
	msg := fmt.Sprintf("refused without a recognised error code (content type %s", ct)
	if ct == "text/html" {
		if title := htmlTitle(body); title != "" && (refreshToken == "" || !strings.Contains(title, refreshToken)) {
			msg += fmt.Sprintf(", page title %q", title)
		}
	}
	return errors.New(msg + "): a firewall or proxy, not a verdict on the token")
}

// htmlTitle is the text of an HTML page's first <title>, whitespace folded,
// anything but printable ASCII dropped, at most maxTitle bytes.
func htmlTitle(body []byte) string {
	lower := bytes.ToLower(body)
	i := bytes.Index(lower, []byte("<title"))
	if i < 0 {
		return ""
	}
	j := bytes.IndexByte(lower[i:], '>')
	if j < 0 {
		return ""
	}
	start := i + j + 1
	end := bytes.Index(lower[start:], []byte("</title"))
	if end < 0 {
		return ""
	}
	var b strings.Builder
	space := false
	for _, c := range body[start : start+end] {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = b.Len() > 0
		case c > ' ' && c < 0x7f:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteByte(c)
		}
		if b.Len() >= maxTitle {
			break
		}
	}
	return b.String()
}

// parseRetryAfter reads delta-seconds or an HTTP date; anything else is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > 7*24*3600 {
			n = 7 * 24 * 3600
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
