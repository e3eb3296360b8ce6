// Package httpsource is the follower-only credential source for platforms
// that already run a central refresher: it reads the current credential from
// the platform's secrets endpoint (the sync loop the old entrypoint ran) and
// adopts it into the local auth.json under the CLI's lock protocol. It never
// talks to the token endpoint.
package httpsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// Variables looked up in the platform's answer, the first found wins.
var credentialKeys = []string{"CODEX_AUTH_JSON", "CODEX_CHATGPT_AUTH_JSON"}

// Config configures a Source.
type Config struct {
	// BaseURL is the platform (WORKSPACE_SERVER_URL or PLATFORM_URL).
	BaseURL     string
	WorkspaceID string
	OrgID       string // sent as X-Molecule-Org-Id when set
	// TokenFile holds the bearer token; read at every fetch (it may rotate).
	TokenFile string
	Interval  time.Duration // default 1 h
	Timeout   time.Duration // one fetch; default 30 s
	Home      authwatch.Home
	Logger    hclog.Logger
	Client    *http.Client // default: no redirects, proxy from the environment
}

// Source follows the platform's copy of the credential.
type Source struct {
	cfg       Config
	endpoint  string
	log       hclog.Logger
	ready     chan struct{}
	readyOnce sync.Once
}

// Result says what one sync did.
type Result string

const (
	Adopted   Result = "adopted"   // the platform's credential was written locally
	Unchanged Result = "unchanged" // the local file already holds it
	KeptLocal Result = "kept"      // the local one is newer (same account): kept
	Skipped   Result = "skipped"   // the platform has no usable credential
)

// New checks cfg.
func New(cfg Config) (*Source, error) {
	u, err := secreturl.Parse(cfg.BaseURL)
	if errors.Is(err, secreturl.ErrSplitUserInfo) {
		return nil, fmt.Errorf("platform URL: %w", err)
	}
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errors.New("platform URL: want https://HOST[/PATH]")
	}
	u.User = nil
	if cfg.WorkspaceID == "" {
		return nil, errors.New("platform credential source needs WORKSPACE_ID")
	}
	if cfg.TokenFile == "" {
		return nil, errors.New("platform credential source needs a token file")
	}
	if cfg.Home.Dir == "" {
		return nil, errors.New("CODEX_HOME is empty")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	endpoint := strings.TrimRight(u.String(), "/") + "/workspaces/" + url.PathEscape(cfg.WorkspaceID) + "/secrets/values"
	return &Source{cfg: cfg, endpoint: endpoint, log: cfg.Logger, ready: make(chan struct{})}, nil
}

// Ready closes after the first sync attempt.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Run syncs now and then every Interval (sooner after a failure) until ctx
// ends.
func (s *Source) Run(ctx context.Context) error {
	for {
		res, err := s.Sync(ctx)
		s.readyOnce.Do(func() { close(s.ready) })
		wait := s.cfg.Interval
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("platform credential sync failed; the local credential stays", "error", err.Error())
			wait = min(wait, time.Minute)
		} else if res == Adopted {
			s.log.Info("adopted the platform's credential")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Sync fetches the platform's credential once and adopts it when it is valid
// and may replace the local one (authwatch.ReplaceOnFollow).
func (s *Source) Sync(ctx context.Context) (Result, error) {
	raw, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	if raw == nil {
		return Skipped, nil
	}
	remote, err := authwatch.ParseAuthFile(raw)
	if err != nil {
		return Skipped, fmt.Errorf("platform credential is not a valid auth.json: %w", err)
	}
	if ok, why := remote.Refreshable(); !ok {
		return Skipped, fmt.Errorf("platform credential not usable: %s", why)
	}
	result := Unchanged
	err = authwatch.NewFileStore(s.cfg.Home).Update(ctx, func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
		// A strictly fresher local login of the same account is kept: the CLI
		// refreshed it after the platform's copy was taken.
		switch v := authwatch.MayReplace(remote, cur, authwatch.ReplaceOnFollow); {
		case v.Replace:
			result = Adopted
			return remote, nil
		case v.Reason == authwatch.ReasonSameTokens:
			result = Unchanged
		default:
			result = KeptLocal
		}
		return nil, nil
	})
	if errors.Is(err, authwatch.ErrSuperseded) {
		return KeptLocal, nil
	}
	if err != nil {
		return "", fmt.Errorf("writing the platform credential: %w", err)
	}
	return result, nil
}

// fetch returns the credential's bytes, nil when the answer has none.
func (s *Source) fetch(ctx context.Context) ([]byte, error) {
	tok, err := os.ReadFile(s.cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("platform token file: %w", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" {
		return nil, errors.New("platform token file is empty")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("platform request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if s.cfg.OrgID != "" {
		req.Header.Set("X-Molecule-Org-Id", s.cfg.OrgID)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known; keep the message short
		}
		return nil, fmt.Errorf("platform %s: %v", s.endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("platform %s: reading the answer: %v", s.endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("platform %s answered HTTP %d", s.endpoint, resp.StatusCode)
	}
	return findCredential(body)
}

// findCredential takes CODEX_AUTH_JSON out of the answer: a top-level key, or
// one inside "secrets"/"values"/"data", or a list of {key|name, value}. The
// value may be a JSON string (the variable's text) or the object itself.
func findCredential(body []byte) ([]byte, error) {
	var top any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, errors.New("platform answer is not JSON")
	}
	var search func(v any, depth int) (json.RawMessage, bool)
	search = func(v any, depth int) (json.RawMessage, bool) {
		if depth > 3 {
			return nil, false
		}
		switch t := v.(type) {
		case map[string]any:
			for _, k := range credentialKeys {
				if val, ok := t[k]; ok && val != nil {
					return asBytes(val)
				}
			}
			if k := firstString(t, "key", "name"); k != "" {
				for _, want := range credentialKeys {
					if k == want {
						if val, ok := t["value"]; ok && val != nil {
							return asBytes(val)
						}
					}
				}
			}
			for _, wrap := range []string{"secrets", "values", "data"} {
				if inner, ok := t[wrap]; ok {
					if r, ok := search(inner, depth+1); ok {
						return r, true
					}
				}
			}
		case []any:
			for _, e := range t {
				if r, ok := search(e, depth+1); ok {
					return r, true
				}
			}
		}
		return nil, false
	}
	if raw, ok := search(top, 0); ok {
		return raw, nil
	}
	return nil, nil
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok {
			return s
		}
	}
	return ""
}

func asBytes(v any) (json.RawMessage, bool) {
	switch t := v.(type) {
	case string:
		if strings.TrimSpace(t) == "" {
			return nil, false
		}
		return json.RawMessage(t), true
	case map[string]any:
		b, err := json.Marshal(t)
		return b, err == nil
	}
	return nil, false
}
