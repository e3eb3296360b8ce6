package main

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/boot"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

func fleetOptions() []option {
	return []option{
		{
			Flag: "credential-store", Env: "CODEX_LAUNCH_CREDENTIAL_STORE", Default: "", Secret: true, FlagCheck: storeFlagCheck,
			Usage: "where the credential lives: empty = CODEX_HOME/auth.json alone; postgres://... = shared by a fleet " +
				"(exactly one launcher refreshes); https://PLATFORM = follow a central refresher (never refreshes); " +
				"give a URL with a password in the variable, never as the flag (argv is readable by other processes); better, " +
				"keep the password in a .pgpass file (PGPASSFILE); PGPASSWORD, if used, is inherited by the child",
			Set: func(c *Config, raw string) error {
				c.Fleet.Store = strings.TrimSpace(raw)
				if err := fleet.CheckStore(c.Fleet.Store); err != nil {
					return err
				}
				if c.Fleet.Kind() == fleet.KindPlatform {
					// Follower-only: a central refresher owns the refresh
					// token, so this launcher must never redeem it.
					c.RefreshOwner = false
				}
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

// buildStore starts the store the fleet options chose (fleet.Open: nil for
// the local file alone), named by its Settings.Describe. The platform
// source's workspace and organisation come from env, the command's one
// environment (the env directory merged).
func buildStore(ctx context.Context, cfg *Config, env []string, home authwatch.Home, log hclog.Logger) (*fleet.Running, error) {
	workspace, _ := boot.LookupEnv(env, "WORKSPACE_ID")
	org, _ := boot.LookupEnv(env, "MOLECULE_ORG_ID")
	r, err := fleet.Open(ctx, cfg.Fleet, fleet.Launch{
		Home: home, Policy: refreshPolicy(cfg), RefreshTimeout: cfg.RefreshTimeout, Wait: cfg.PrimeTimeout,
		WorkspaceID: workspace, OrgID: org, Logger: log,
	})
	if err != nil {
		return nil, usageErrorf("the credential store (CODEX_LAUNCH_CREDENTIAL_STORE, CODEX_LAUNCH_CREDENTIAL_KEY_FILE, CODEX_LAUNCH_CREDENTIAL_KEYS): %v", err)
	}
	return r, nil
}

// refreshPolicy is the watchdog's refresh policy from the configuration; a
// pooled follower's poll schedule follows the same due moment.
func refreshPolicy(cfg *Config) authwatch.Policy {
	return authwatch.Policy{Interval: cfg.Interval, SafetyMargin: cfg.SafetyMargin, StaleAfter: cfg.StaleAfter}
}
