package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// cliBackend is a loopback stand-in for everything the Codex CLI talks to
// besides the token endpoint: the ChatGPT backend (chatgpt_base_url,
// /backend-api/...) and the Responses API (openai_base_url, /v1/...). It
// records every request with a fingerprint of its bearer token (never the
// token), answers a turn with a canned streamed reply, and rejects an expired
// access token with 401 as the real backend does, so a CLI that sends a stale
// token is caught by the refresh it then makes.
//
// What a turn needs, learnt from running the real CLI (0.130.0 and 0.171.0):
// the CLI first tries a WebSocket upgrade on GET /v1/responses and falls back
// to HTTP at once when the upgrade is answered 426; the HTTP turn is
// POST /v1/responses (zstd-compressed JSON body) answered with server-sent
// events response.created, response.output_item.done (an assistant message)
// and response.completed. Everything else (models list, plugins, analytics,
// MCP, account checks) may answer 404: the CLI logs it and carries on.
type cliBackend struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []cliBackendRequest
	reject   map[string]bool // fingerprints answered 401
	failTurn int             // status for POST /v1/responses; 0 = the canned reply
	hangTurn chan struct{}   // when set, POST /v1/responses waits for it to close
	turns    int             // POST /v1/responses seen so far
	// turnHook, when set, runs at the start of each POST /v1/responses
	// (n counts from 1) and says how to answer it.
	turnHook func(n int) turnAction
}

// cliBackendRequest is what the backend saw of one request, token-free.
type cliBackendRequest struct {
	Time    time.Time
	Method  string
	Path    string
	AuthFP  string // fingerprint of the bearer token, "" without one
	Account string // ChatGPT-Account-Id header
	Status  int
}

// cliBackendReply is the text of the canned assistant message: a turn that
// printed it reached the backend and completed.
const cliBackendReply = "codex-launch-cli-mock-reply"

func startCLIBackend() *cliBackend {
	b := &cliBackend{reject: map[string]bool{}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	return b
}

func (b *cliBackend) Close() { b.srv.CloseClientConnections(); b.srv.Close() }

// ChatGPTBaseURL and OpenAIBaseURL are the config.toml values.
func (b *cliBackend) ChatGPTBaseURL() string { return b.srv.URL + "/backend-api/" }
func (b *cliBackend) OpenAIBaseURL() string  { return b.srv.URL + "/v1" }

// Reject makes the backend answer 401 to requests carrying accessToken.
func (b *cliBackend) Reject(accessToken string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reject[cliFingerprint(accessToken)] = true
}

// FailTurns makes POST /v1/responses answer status (0 restores the reply).
func (b *cliBackend) FailTurns(status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failTurn = status
}

// HangTurns makes POST /v1/responses hang (headers sent, no events) until
// release is closed: a turn in progress.
func (b *cliBackend) HangTurns(release chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hangTurn = release
}

// turnAction is how the backend answers one turn request.
type turnAction int

const (
	turnReply turnAction = iota // the canned assistant message
	// turnDrop aborts the connection without an answer, as a network
	// failure would: the CLI retries the same request.
	turnDrop
	// turnToolCall answers with a call of the update_plan tool: the CLI
	// runs it and sends a new request with its output in the same turn.
	turnToolCall
)

// OnTurn sets the turn hook (see cliBackend.turnHook).
func (b *cliBackend) OnTurn(hook func(n int) turnAction) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.turnHook = hook
}

// Requests returns every recorded request in arrival order.
func (b *cliBackend) Requests() []cliBackendRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]cliBackendRequest(nil), b.requests...)
}

// Turns returns the completed-or-attempted HTTP turns: POST .../responses.
func (b *cliBackend) Turns() []cliBackendRequest {
	var out []cliBackendRequest
	for _, r := range b.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/responses") {
			out = append(out, r)
		}
	}
	return out
}

// Summary lists the distinct requests as "METHOD path status ×n", in order
// of first appearance (for the compatibility notes).
func (b *cliBackend) Summary() string {
	var order []string
	count := map[string]int{}
	for _, r := range b.Requests() {
		k := fmt.Sprintf("%s %s %d", r.Method, r.Path, r.Status)
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	var out []string
	for _, k := range order {
		out = append(out, fmt.Sprintf("%s ×%d", k, count[k]))
	}
	return strings.Join(out, "; ")
}

// cliFingerprint names a token without revealing it: 8 bytes of its SHA-256.
func cliFingerprint(token string) string {
	if token == "" {
		return ""
	}
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:8])
}

func (b *cliBackend) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	req := cliBackendRequest{
		Time:    time.Now(),
		Method:  r.Method,
		Path:    r.URL.Path,
		AuthFP:  cliFingerprint(bearer),
		Account: r.Header.Get("ChatGPT-Account-Id"),
	}
	// Recorded on arrival (a hanging or dropped request counts too); the
	// status is filled in when the answer is known.
	b.mu.Lock()
	idx := len(b.requests)
	b.requests = append(b.requests, req)
	b.mu.Unlock()
	status := b.answer(w, r, bearer)
	b.mu.Lock()
	b.requests[idx].Status = status
	b.mu.Unlock()
}

func (b *cliBackend) answer(w http.ResponseWriter, r *http.Request, bearer string) int {
	b.mu.Lock()
	rejected := bearer != "" && b.reject[cliFingerprint(bearer)]
	failTurn, hang := b.failTurn, b.hangTurn
	b.mu.Unlock()
	if bearer != "" && (rejected || cliExpired(bearer)) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"token_expired","message":"cli mock: access token rejected"}}`)
		return http.StatusUnauthorized
	}
	isResponses := strings.HasSuffix(r.URL.Path, "/responses")
	switch {
	case isResponses && r.Header.Get("Upgrade") != "":
		// No WebSocket here: 426 makes the CLI fall back to HTTP at once
		// (other statuses make it retry the upgrade five times first).
		w.WriteHeader(http.StatusUpgradeRequired)
		return http.StatusUpgradeRequired
	case isResponses && r.Method == http.MethodPost && b.runTurnHook() == turnToolCall:
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, cliSSEToolCall)
		return http.StatusOK
	case isResponses && r.Method == http.MethodPost && failTurn != 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(failTurn)
		_, _ = fmt.Fprintf(w, `{"error":{"code":"invalid_request_error","message":"cli mock: turn refused with %d"}}`, failTurn)
		return failTurn
	case isResponses && r.Method == http.MethodPost && hang != nil:
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "event: response.created\n"+`data: {"type":"response.created","response":{"id":"resp_mock"}}`+"\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return http.StatusOK
	case isResponses && r.Method == http.MethodPost:
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, cliSSETurn)
		return http.StatusOK
	}
	http.NotFound(w, r)
	return http.StatusNotFound
}

// runTurnHook counts a turn request and runs the hook. A drop aborts the
// handler here.
func (b *cliBackend) runTurnHook() turnAction {
	b.mu.Lock()
	b.turns++
	n, hook := b.turns, b.turnHook
	b.mu.Unlock()
	if hook == nil {
		return turnReply
	}
	a := hook(n)
	if a == turnDrop {
		panic(http.ErrAbortHandler)
	}
	return a
}

// expired reports whether a JWT's exp has passed. Tokens that are not JWTs
// (none are expected) count as valid: the test checks fingerprints anyway.
func cliExpired(token string) bool {
	claims, err := tokenmock.DecodeClaims(token)
	if err != nil {
		return false
	}
	exp, ok := claims["exp"].(float64)
	return ok && time.Unix(int64(exp), 0).Before(time.Now())
}

const cliSSETurn = "event: response.created\n" +
	`data: {"type":"response.created","response":{"id":"resp_mock"}}` + "\n\n" +
	"event: response.output_item.done\n" +
	`data: {"type":"response.output_item.done","item":{"type":"message","role":"assistant","id":"msg_mock","content":[{"type":"output_text","text":"` + cliBackendReply + `"}]}}` + "\n\n" +
	"event: response.completed\n" +
	`data: {"type":"response.completed","response":{"id":"resp_mock","usage":{"input_tokens":1,"input_tokens_details":null,"output_tokens":1,"output_tokens_details":null,"total_tokens":2}}}` + "\n\n"

const cliSSEToolCall = "event: response.created\n" +
	`data: {"type":"response.created","response":{"id":"resp_tool"}}` + "\n\n" +
	"event: response.output_item.done\n" +
	`data: {"type":"response.output_item.done","item":{"type":"function_call","id":"fc_mock","call_id":"call_mock","name":"update_plan","arguments":"{\"plan\":[{\"step\":\"say hi\",\"status\":\"completed\"}]}"}}` + "\n\n" +
	"event: response.completed\n" +
	`data: {"type":"response.completed","response":{"id":"resp_tool","usage":{"input_tokens":1,"input_tokens_details":null,"output_tokens":1,"output_tokens_details":null,"total_tokens":2}}}` + "\n\n"
