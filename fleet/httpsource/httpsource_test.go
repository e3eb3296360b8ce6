package httpsource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

type platform struct {
	srv     *httptest.Server
	body    atomic.Value // string
	status  atomic.Int64
	gets    atomic.Int64
	badAuth atomic.Int64
}

func newPlatform(t *testing.T) *platform {
	p := &platform{}
	p.status.Store(200)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.gets.Add(1)
		if r.Method != http.MethodGet || r.URL.Path != "/workspaces/ws-1/secrets/values" ||
			r.Header.Get("Authorization") != "Bearer platform-token" || r.Header.Get("X-Molecule-Org-Id") != "org-9" {
			p.badAuth.Add(1)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(int(p.status.Load()))
		b, _ := p.body.Load().(string)
		w.Write([]byte(b))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) serve(t *testing.T, auth []byte) {
	b, _ := json.Marshal(map[string]any{"CODEX_AUTH_JSON": string(auth), "OTHER": "x"})
	p.body.Store(string(b))
}

func newSource(t *testing.T, p *platform) (*Source, authwatch.Home) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("platform-token\n"), 0o600)
	home := authwatch.Home{Dir: filepath.Join(dir, "codex")}
	os.Mkdir(home.Dir, 0o700)
	s, err := New(Config{BaseURL: p.srv.URL + "/", WorkspaceID: "ws-1", OrgID: "org-9", TokenFile: tok, Home: home, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s, home
}

func rt(t *testing.T, h authwatch.Home) string {
	f, _, err := h.Read()
	if err != nil {
		return ""
	}
	return f.Tokens().RefreshToken
}

func TestSyncAdoptsKeepsNewerLocalAndSkipsInvalid(t *testing.T) {
	mock := tokenmock.Start(tokenmock.Options{})
	defer mock.Close()
	p := newPlatform(t)
	s, home := newSource(t, p)
	ctx := context.Background()

	c0 := mock.Issue("acct")
	p.serve(t, mock.AuthJSON(c0, time.Now().Add(-time.Hour)))
	if res, err := s.Sync(ctx); err != nil || res != Adopted || rt(t, home) != c0.RefreshToken {
		t.Fatalf("first sync: %v %v", res, err)
	}
	if res, err := s.Sync(ctx); err != nil || res != Unchanged {
		t.Fatalf("second sync: %v %v", res, err)
	}
	// The local CLI refreshed: the platform's older copy must not replace it.
	c1 := mock.IssueWithExpiry("acct", time.Now().Add(2*time.Hour))
	os.WriteFile(home.AuthPath(), mock.AuthJSON(c1, time.Now()), 0o600)
	if res, err := s.Sync(ctx); err != nil || res != KeptLocal || rt(t, home) != c1.RefreshToken {
		t.Fatalf("older platform copy: %v %v", res, err)
	}
	// The central refresher rotated: newer platform copy is adopted.
	c2 := mock.IssueWithExpiry("acct", time.Now().Add(3*time.Hour))
	p.serve(t, mock.AuthJSON(c2, time.Now().Add(time.Minute)))
	if res, err := s.Sync(ctx); err != nil || res != Adopted || rt(t, home) != c2.RefreshToken {
		t.Fatalf("newer platform copy: %v %v", res, err)
	}
	// Garbage, an API-key login, an absent key: nothing changes.
	for _, body := range []string{`{"CODEX_AUTH_JSON":"{not json"}`, `{"CODEX_AUTH_JSON":"{\"OPENAI_API_KEY\":\"sk-x\"}"}`, `{"OTHER":"x"}`, `not json`} {
		p.body.Store(body)
		res, _ := s.Sync(ctx)
		if rt(t, home) != c2.RefreshToken {
			t.Fatalf("body %q changed auth.json (%v)", body, res)
		}
	}
	// A server error is an error, and says nothing secret.
	p.status.Store(500)
	p.serve(t, mock.AuthJSON(c2, time.Now()))
	_, err := s.Sync(ctx)
	if err == nil || strings.Contains(err.Error(), "platform-token") || len(mock.Leaks([]byte(err.Error()))) > 0 {
		t.Fatalf("500: %v", err)
	}
	if p.badAuth.Load() != 0 {
		t.Fatalf("%d requests without the right path/headers", p.badAuth.Load())
	}
	if mock.Posts() != 0 {
		t.Fatalf("the follower-only source POSTed %d times to the token endpoint", mock.Posts())
	}
}

func TestFindCredentialShapes(t *testing.T) {
	auth := `{"tokens":{"refresh_token":"r"}}`
	enc, _ := json.Marshal(auth)
	for _, body := range []string{
		`{"CODEX_AUTH_JSON":` + string(enc) + `}`,
		`{"secrets":{"CODEX_AUTH_JSON":` + string(enc) + `}}`,
		`{"values":[{"key":"X","value":"y"},{"key":"CODEX_AUTH_JSON","value":` + string(enc) + `}]}`,
		`{"CODEX_CHATGPT_AUTH_JSON":` + auth + `}`,
	} {
		got, err := findCredential([]byte(body))
		if err != nil || !strings.Contains(string(got), `"refresh_token"`) {
			t.Errorf("%s: %q %v", body, got, err)
		}
	}
	if got, err := findCredential([]byte(`{"X":"y"}`)); got != nil || err != nil {
		t.Errorf("absent: %q %v", got, err)
	}
}

func TestRunSyncsOnItsInterval(t *testing.T) {
	mock := tokenmock.Start(tokenmock.Options{})
	defer mock.Close()
	p := newPlatform(t)
	s, home := newSource(t, p)
	s.cfg.Interval = 50 * time.Millisecond
	p.serve(t, mock.AuthJSON(mock.Issue("acct"), time.Now()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-s.Ready()
	c := mock.IssueWithExpiry("acct", time.Now().Add(time.Hour))
	p.serve(t, mock.AuthJSON(c, time.Now().Add(time.Minute)))
	deadline := time.Now().Add(5 * time.Second)
	for rt(t, home) != c.RefreshToken {
		if time.Now().After(deadline) {
			t.Fatal("new platform credential not adopted by the loop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestNewRefusesASplitURL: a password holding a "/" ends the host part
// early; the parse then keeps it in the port and path, where dropping the
// user information would not remove it from every request error. Such a URL
// is refused, and the error does not show it.
func TestNewRefusesASplitURL(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("platform-token\n"), 0o600)
	_, err := New(Config{BaseURL: "https://svc:8/s3cret@platform.example/", WorkspaceID: "ws-1", TokenFile: tok,
		Home: authwatch.Home{Dir: dir}, Interval: time.Hour})
	if !errors.Is(err, secreturl.ErrSplitUserInfo) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("New: %v", err)
	}
}

// TestSyncKeepsAFresherLocalLoginWithoutAccount: a login whose files name no
// account is still one login; the CLI's local refresh of it spent the
// platform copy's refresh token, so that copy must not replace it.
func TestSyncKeepsAFresherLocalLoginWithoutAccount(t *testing.T) {
	mock := tokenmock.Start(tokenmock.Options{})
	defer mock.Close()
	p := newPlatform(t)
	s, home := newSource(t, p)
	ctx := context.Background()

	spent := mock.IssueWithExpiry("", time.Now().Add(time.Hour))
	live := mock.IssueWithExpiry("", time.Now().Add(2*time.Hour))
	os.WriteFile(home.AuthPath(), mock.AuthJSON(live, time.Now()), 0o600)
	p.serve(t, mock.AuthJSON(spent, time.Now().Add(-time.Hour)))
	if res, err := s.Sync(ctx); err != nil || res != KeptLocal || rt(t, home) != live.RefreshToken {
		t.Fatalf("older platform copy of an account-less login: %v %v", res, err)
	}
}
