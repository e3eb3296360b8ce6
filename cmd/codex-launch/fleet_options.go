package main

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
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/fleet/httpsource"
	"github.com/molecule-ai/codex-launch/fleet/seal"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// fleetConfig is where the credential lives: the local auth.json (the
// default) or a store shared by a fleet of containers.
type fleetConfig struct {
	// Store is "" (or "file") for the local auth.json alone, a postgres://
	// URL for the shared PostgreSQL store, or an http(s):// platform URL for
	// the follower-only source.
	Store        string
	Name         string
	KeyFile      string
	Keys         string // CODEX_LAUNCH_CREDENTIAL_KEYS (no flag: a secret)
	Fallback     bool
	PollInterval time.Duration
	// Pooled: the postgres URL leads to a transaction pooler (PgBouncer in
	// transaction mode); FastPollInterval is its followers' poll near a
	// refresh.
	Pooled           bool
	FastPollInterval time.Duration
	TokenFile        string
	SyncInterval     time.Duration
}

// storeKind says which store the configuration chose.
func (f fleetConfig) storeKind() string {
	switch {
	case f.Store == "" || f.Store == "file":
		return "file"
	case strings.HasPrefix(f.Store, "postgres://"), strings.HasPrefix(f.Store, "postgresql://"):
		return "postgres"
	default:
		return "http"
	}
}

func fleetOptions() []option {
	return []option{
		{
			Flag: "credential-store", Env: "CODEX_LAUNCH_CREDENTIAL_STORE", Default: "", Secret: true, FlagCheck: storeFlagCheck,
			Usage: "where the credential lives: empty = CODEX_HOME/auth.json alone; postgres://... = shared by a fleet " +
				"(exactly one launcher refreshes); https://PLATFORM = follow a central refresher (never refreshes); " +
				"give a URL with a password in the variable, never as the flag (argv is readable by other processes); better, " +
				"keep the password in a .pgpass file (PGPASSFILE); PGPASSWORD, if used, is inherited by the child",
			Set: func(c *Config, raw string) error {
				raw = strings.TrimSpace(raw)
				c.Fleet.Store = raw
				switch c.Fleet.storeKind() {
				case "file":
					return nil
				case "postgres":
					if _, err := url.Parse(raw); err != nil {
						// Not echoed even redacted: the value may hold a
						// password that no redaction can find the end of.
						return errors.New("not a postgres URL (value hidden)")
					}
					return nil
				}
				u, err := url.Parse(raw)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					return errors.New("want empty, a postgres:// URL or an https:// URL")
				}
				if u.Scheme == "http" && !secreturl.IsLoopbackHost(u.Hostname()) {
					return errors.New("plain http only on loopback")
				}
				// Follower-only: a central refresher owns the refresh token,
				// so this launcher must never redeem it.
				c.RefreshOwner = false
				return nil
			},
		},
		{
			Flag: "credential-name", Env: "CODEX_LAUNCH_CREDENTIAL_NAME", Default: "default",
			Usage: "the credential's name in a shared store (several can share one database)",
			Set: func(c *Config, raw string) error {
				if strings.TrimSpace(raw) == "" || len(raw) > 200 {
					return errors.New("must be 1-200 characters")
				}
				c.Fleet.Name = raw
				return nil
			},
		},
		{
			Flag: "credential-key-file", Env: "CODEX_LAUNCH_CREDENTIAL_KEY_FILE", Default: "",
			Usage: "file of ID:KEY lines (32-byte base64 keys): the stored credential is sealed with AES-256-GCM " +
				"under the first, any can open (rotation)",
			Set: func(c *Config, raw string) error { c.Fleet.KeyFile = raw; return nil },
		},
		{
			Env: "CODEX_LAUNCH_CREDENTIAL_KEYS", Default: "", Secret: true,
			Usage: "the same keys inline (ID:KEY, comma- or newline-separated), added after the key file's",
			Set:   func(c *Config, raw string) error { c.Fleet.Keys = raw; return nil },
		},
		{
			Flag: "fleet-fallback-refresh", Env: "CODEX_LAUNCH_FLEET_FALLBACK_REFRESH", Default: "false", Bool: true,
			Usage: "while the shared store is unreachable, refresh the local credential alone (risks a refresh storm)",
			Set:   func(c *Config, raw string) error { return setBool(&c.Fleet.Fallback, raw) },
		},
		{
			Flag: "fleet-poll-interval", Env: "CODEX_LAUNCH_FLEET_POLL_INTERVAL", Default: "30s",
			Usage: "shared store: read the stored generation this often when no notice came (a fallback)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.Fleet.PollInterval, raw, false) },
		},
		{
			Flag: "credential-store-mode", Env: "CODEX_LAUNCH_CREDENTIAL_STORE_MODE", Default: "direct",
			Usage: "postgres store: direct = one database session per launcher (LISTEN; small fleets, or a pooler in " +
				"session mode); pooled = the URL is a transaction pooler such as PgBouncer (no session state; followers " +
				"poll, fast around each expected refresh)",
			Set: func(c *Config, raw string) error {
				switch strings.TrimSpace(raw) {
				case "direct":
					c.Fleet.Pooled = false
				case "pooled":
					c.Fleet.Pooled = true
				default:
					return errors.New("want direct or pooled")
				}
				return nil
			},
		},
		{
			Flag: "fleet-fast-poll-interval", Env: "CODEX_LAUNCH_FLEET_FAST_POLL_INTERVAL", Default: "2s",
			Usage: "pooled store: read the stored generation this often from shortly before its expected refresh until a new one appears",
			Set:   func(c *Config, raw string) error { return setDuration(&c.Fleet.FastPollInterval, raw, false) },
		},
		{
			Flag: "credential-token-file", Env: "CODEX_LAUNCH_CREDENTIAL_TOKEN_FILE", Default: "/configs/.auth_token",
			Usage: "https store: file holding the bearer token for the platform (WORKSPACE_ID and MOLECULE_ORG_ID from the environment)",
			Set:   func(c *Config, raw string) error { c.Fleet.TokenFile = raw; return nil },
		},
		{
			Flag: "credential-sync-interval", Env: "CODEX_AUTH_SYNC_INTERVAL_SECONDS", Default: "1h",
			Usage: "https store: fetch the platform's credential this often",
			Set:   func(c *Config, raw string) error { return setDuration(&c.Fleet.SyncInterval, raw, false) },
		},
	}
}

// storeFlagCheck refuses a credential-store URL carrying a password when it
// comes from the flag: argv is readable by every process of the container in
// /proc/PID/cmdline. The variable (and a .pgpass file) stays allowed. A value
// whose parse cannot be trusted (secreturl.Parse refuses it) is refused too
// when it may hold user information, since where its password ends cannot
// be told.
func storeFlagCheck(raw string) error {
	raw = strings.TrimSpace(raw)
	u, err := secreturl.Parse(raw)
	var hasPassword bool
	switch {
	case err == nil:
		_, hasPassword = u.User.Password()
		hasPassword = hasPassword || u.Query().Has("password")
	case strings.Contains(raw, "@"):
		hasPassword = true
	default: // does not parse
		hasPassword = strings.Contains(strings.ToLower(raw), "password")
	}
	if hasPassword {
		return errors.New("--credential-store must not carry a password (argv is readable by other processes; value hidden): " +
			"set CODEX_LAUNCH_CREDENTIAL_STORE instead, or keep the password in a .pgpass file (PGPASSFILE)")
	}
	return nil
}

// fleetStoreName is the store as the status file and logs show it: "file",
// or the shared store's URL without its password.
func fleetStoreName(cfg *Config) string {
	switch cfg.Fleet.storeKind() {
	case "file":
		return "file"
	case "postgres":
		return fmt.Sprintf("%s (credential %s)", secreturl.Mask(cfg.Fleet.Store), cfg.Fleet.Name)
	}
	if u, err := secreturl.Parse(cfg.Fleet.Store); err == nil {
		return "platform " + secreturl.Redact(u)
	}
	return "platform"
}

// buildStore turns the fleet options into a store named by fleetStoreName
// (its String). nil means the local file alone (the default). A shared store
// comes back started (fleet.Start: its follower runs until Close) once its
// first sync is done or the prime timeout has passed, so that the prime
// pass and the child start on the fleet's newest generation. An https store
// is follower-only: the option table has already turned refresh-owner off,
// so this launcher never POSTs.
func buildStore(ctx context.Context, cfg *Config, home authwatch.Home, log hclog.Logger) (*fleet.Running, error) {
	fc := cfg.Fleet
	var f fleet.Follower
	switch fc.storeKind() {
	case "file":
		return nil, nil
	case "http":
		src, err := httpsource.New(httpsource.Config{
			BaseURL:     fc.Store,
			WorkspaceID: os.Getenv("WORKSPACE_ID"),
			OrgID:       os.Getenv("MOLECULE_ORG_ID"),
			TokenFile:   fc.TokenFile,
			Interval:    fc.SyncInterval,
			Home:        home,
			Logger:      log.Named("fleet"),
		})
		if err != nil {
			return nil, &UsageError{Msg: "--credential-store (CODEX_LAUNCH_CREDENTIAL_STORE): " + err.Error()}
		}
		f.Store, f.Run, f.Ready = authwatch.NewFileStore(home), src.Run, src.Ready()
	default:
		keys, err := loadKeys(fc)
		if err != nil {
			return nil, &UsageError{Msg: err.Error()}
		}
		fl, err := fleet.New(fleet.Config{
			URL: fc.Store, Name: fc.Name, Keys: keys, Home: home, Fallback: fc.Fallback,
			PollInterval: fc.PollInterval, Pooled: fc.Pooled, FastPollInterval: fc.FastPollInterval, Policy: refreshPolicy(cfg),
			LockTimeout:   max(2*cfg.RefreshTimeout, 30*time.Second),
			IdleTxTimeout: max(2*time.Minute, 2*cfg.RefreshTimeout+30*time.Second),
			Logger:        log.Named("fleet"),
		})
		if err != nil {
			return nil, &UsageError{Msg: "--credential-store (CODEX_LAUNCH_CREDENTIAL_STORE): " + err.Error()}
		}
		f.Store, f.Run, f.Ready = fl, fl.Run, fl.Ready()
	}
	f.Name = fleetStoreName(cfg)
	return fleet.Start(ctx, f, cfg.PrimeTimeout, log.Named("fleet")), nil
}

// refreshPolicy is the watchdog's refresh policy from the configuration; a
// pooled follower's poll schedule follows the same due moment.
func refreshPolicy(cfg *Config) authwatch.Policy {
	return authwatch.Policy{Interval: cfg.Interval, SafetyMargin: cfg.SafetyMargin, StaleAfter: cfg.StaleAfter}
}

// loadKeys reads the sealing keys: the key file's first, then the inline ones.
func loadKeys(fc fleetConfig) (*seal.Keyring, error) {
	var text []byte
	if fc.KeyFile != "" {
		b, err := os.ReadFile(fc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--credential-key-file (CODEX_LAUNCH_CREDENTIAL_KEY_FILE): %w", err)
		}
		text = append(b, '\n')
	}
	text = append(text, fc.Keys...)
	if strings.TrimSpace(string(text)) == "" {
		return nil, nil
	}
	k, err := seal.ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("credential keys (CODEX_LAUNCH_CREDENTIAL_KEY_FILE / CODEX_LAUNCH_CREDENTIAL_KEYS): %w", err)
	}
	return k, nil
}
