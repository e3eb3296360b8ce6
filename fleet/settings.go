package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/httpsource"
	"github.com/molecule-ai/codex-launch/fleet/seal"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// Settings is where a launcher's credential lives, as its configuration
// says: the local auth.json alone (the default), a PostgreSQL store shared by
// a fleet, or a platform that a central refresher keeps (https,
// follower-only).
type Settings struct {
	// Store is "" (or "file") for the local auth.json alone, a postgres://
	// URL for the shared PostgreSQL store, or an http(s):// platform URL.
	Store        string
	Name         string // the credential's name in a shared store
	KeyFile      string // ID:KEY lines sealing the stored credential
	Keys         string // more ID:KEY lines, after the key file's
	Fallback     bool
	PollInterval time.Duration
	// Pooled: the postgres URL leads to a transaction pooler;
	// FastPollInterval is its followers' poll near a refresh.
	Pooled           bool
	FastPollInterval time.Duration
	TokenFile        string        // the platform's bearer token
	SyncInterval     time.Duration // how often the platform is asked
}

// The kinds of store Settings.Kind names.
const (
	KindFile     = "file"
	KindPostgres = "postgres"
	KindPlatform = "platform"
)

// Kind says which store Store names.
func (s Settings) Kind() string {
	switch {
	case s.Store == "" || s.Store == "file":
		return KindFile
	case strings.HasPrefix(s.Store, "postgres://"), strings.HasPrefix(s.Store, "postgresql://"):
		return KindPostgres
	}
	return KindPlatform
}

// CheckStore checks the form of a Store value: empty or "file", a postgres
// URL, or an https platform URL (plain http only on loopback). Its errors
// never quote the value, which may hold a password.
func CheckStore(store string) error {
	u, err := url.Parse(store)
	switch (Settings{Store: store}).Kind() {
	case KindFile:
		return nil
	case KindPostgres:
		if err != nil {
			// Not echoed even redacted: the value may hold a password
			// that no redaction can find the end of.
			return errors.New("not a postgres URL (value hidden)")
		}
		return nil
	}
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want empty, a postgres:// URL or an https:// URL")
	}
	if u.Scheme == "http" && !secreturl.IsLoopbackHost(u.Hostname()) {
		return errors.New("plain http only on loopback")
	}
	return nil
}

// Describe is the store as the status files and logs show it: "file", the
// shared store's URL without its password and the credential's name, or the
// platform's redacted URL.
func (s Settings) Describe() string {
	switch s.Kind() {
	case KindFile:
		return "file"
	case KindPostgres:
		return describePostgres(s.Store, s.Name)
	}
	if u, err := secreturl.Parse(s.Store); err == nil {
		return "platform " + secreturl.Redact(u)
	}
	return "platform"
}

func describePostgres(storeURL, name string) string {
	return fmt.Sprintf("%s (credential %s)", secreturl.Mask(storeURL), name)
}

// Keyring reads the sealing keys, the key file's first, then Keys; nil when
// there are none. Its errors never quote a key.
func (s Settings) Keyring() (*seal.Keyring, error) {
	var text []byte
	if s.KeyFile != "" {
		b, err := os.ReadFile(s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("credential key file: %w", err)
		}
		text = append(b, '\n')
	}
	text = append(text, s.Keys...)
	if strings.TrimSpace(string(text)) == "" {
		return nil, nil
	}
	k, err := seal.ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("credential keys: %w", err)
	}
	return k, nil
}

// Launch is what Open needs from the launcher besides the Settings.
type Launch struct {
	Home   authwatch.Home
	Policy authwatch.Policy // the watchdog's: when the stored generation falls due
	// RefreshTimeout is the token endpoint's timeout: a refresher holds the
	// store's lock during its POST, so the lock and idle timeouts exceed it.
	RefreshTimeout time.Duration
	// Wait bounds the wait for the first sync (the prime timeout).
	Wait               time.Duration
	WorkspaceID, OrgID string // the platform's workspace and organisation
	Logger             hclog.Logger
}

// Open starts the store s names, nil for the local file alone. A shared
// store comes back started (Start: its follower runs until Close) once its
// first sync is done or l.Wait has passed, so that the prime pass and the
// child start on the fleet's newest generation. A platform store is
// follower-only: the launcher must not refresh beside it (its configuration
// turns refresh-owner off).
func Open(ctx context.Context, s Settings, l Launch) (*Running, error) {
	log := l.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("fleet")
	var f Follower
	switch s.Kind() {
	case KindFile:
		return nil, nil
	case KindPlatform:
		src, err := httpsource.New(httpsource.Config{
			BaseURL: s.Store, WorkspaceID: l.WorkspaceID, OrgID: l.OrgID,
			TokenFile: s.TokenFile, Interval: s.SyncInterval, Home: l.Home, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		f.Store, f.Run, f.Ready = authwatch.NewFileStore(l.Home), src.Run, src.Ready()
	default:
		keys, err := s.Keyring()
		if err != nil {
			return nil, err
		}
		fl, err := New(Config{
			URL: s.Store, Name: s.Name, Keys: keys, Home: l.Home, Fallback: s.Fallback,
			PollInterval: s.PollInterval, Pooled: s.Pooled, FastPollInterval: s.FastPollInterval, Policy: l.Policy,
			LockTimeout:   max(2*l.RefreshTimeout, 30*time.Second),
			IdleTxTimeout: max(2*time.Minute, 2*l.RefreshTimeout+30*time.Second),
			Logger:        log,
		})
		if err != nil {
			return nil, err
		}
		f.Store, f.Run, f.Ready = fl, fl.Run, fl.Ready()
	}
	f.Name = s.Describe()
	return Start(ctx, f, l.Wait, log), nil
}
