package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/boot"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/signals"
)

// Config is the resolved configuration of one run. Every field is set from
// the option table; nothing else writes it.
type Config struct {
	// Credential (authwatch).
	CodexHome      string // empty: $HOME/.codex of the user the watchdog runs as
	Interval       time.Duration
	SafetyMargin   time.Duration
	StaleAfter     time.Duration
	TokenURL       string
	ClientID       string
	RefreshOwner   bool
	RefreshTimeout time.Duration
	LockTimeout    time.Duration
	MinBackoff     time.Duration
	MaxBackoff     time.Duration
	RecheckWindow  time.Duration // 0: declare a permanent failure at once
	PollInterval   time.Duration

	// Boot and prime.
	User         string
	EnvDir       string
	PrimeTimeout time.Duration
	RequireAuth  bool

	// Process (supervise, signals).
	StopTimeout time.Duration
	StopSignals []syscall.Signal
	SignalGroup bool
	Rewrite     signals.Rewrite
	ExitZero    []int
	PDeathSig   syscall.Signal

	// Logging.
	LogLevel  hclog.Level
	LogFormat string

	// Fleet: the credential's store (fleet_options.go).
	Fleet fleet.Settings
}

// ResolvedCodexHome is the CODEX_HOME directory, given the home directory of
// the user the watchdog and the CLI run as (boot.ResolveTarget decides it for
// the launcher, boot.CurrentHome for the subcommands).
func (c *Config) ResolvedCodexHome(home string) string {
	if c.CodexHome != "" {
		return c.CodexHome
	}
	return filepath.Join(home, ".codex")
}

func credentialOptions() []option {
	return []option{
		{
			Flag: "codex-home", Env: "CODEX_HOME", Default: "~/.codex",
			Usage: "the Codex CLI's home: auth.json, its locks and the status file live here (~ is the --user's home when --user is set)",
			Set: func(c *Config, raw string) error {
				if raw != "" && strings.TrimSpace(raw) == "" {
					return errors.New("must not be blank")
				}
				c.CodexHome = raw
				return nil
			},
			DefaultFunc: func(func(string) string) string { return "" },
		},
		{
			Flag: "refresh-interval", Env: "CODEX_AUTH_REFRESH_INTERVAL_SECONDS", Default: "6h",
			Usage: "how often the watchdog looks at auth.json at the latest",
			Set:   func(c *Config, raw string) error { return setDuration(&c.Interval, raw, false) },
		},
		{
			Flag: "safety-margin", Env: "CODEX_AUTH_SAFETY_MARGIN_SECONDS", Default: "4h",
			Usage: "refresh when the access token expires within this margin (at most half the token's lifetime)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.SafetyMargin, raw, true) },
		},
		{
			Flag: "stale-after", Env: "CODEX_AUTH_STALE_AFTER_SECONDS", Default: "168h",
			Usage: "refresh when last_refresh is older than this (the CLI's own limit is 8 days)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.StaleAfter, raw, false) },
		},
		{
			Flag: "token-url", Env: "CODEX_REFRESH_TOKEN_URL_OVERRIDE", Default: authwatch.DefaultTokenURL,
			Usage: "the OAuth token endpoint (plain http only on loopback)",
			Set: func(c *Config, raw string) error {
				if _, err := authwatch.CheckTokenURL(raw); err != nil {
					return err
				}
				c.TokenURL = raw
				return nil
			},
		},
		{
			Flag: "client-id", Env: "CODEX_APP_SERVER_LOGIN_CLIENT_ID", Default: authwatch.DefaultClientID,
			Usage: "the OAuth client id sent with a refresh",
			Set: func(c *Config, raw string) error {
				if strings.TrimSpace(raw) == "" || strings.ContainsAny(raw, " \t\r\n") {
					return errors.New("must be one word")
				}
				c.ClientID = raw
				return nil
			},
		},
		{
			Flag: "refresh-owner", Env: "CODEX_AUTH_REFRESH_OWNER", Default: "true", Bool: true,
			Usage: "true: this process refreshes; false: watch and report only (another process refreshes)",
			Set:   func(c *Config, raw string) error { return setBool(&c.RefreshOwner, raw) },
		},
		{
			Flag: "refresh-timeout", Env: "CODEX_LAUNCH_REFRESH_TIMEOUT", Default: "30s",
			Usage: "HTTP timeout of one call to the token endpoint",
			Set:   func(c *Config, raw string) error { return setDuration(&c.RefreshTimeout, raw, false) },
		},
		{
			Flag: "lock-timeout", Env: "CODEX_LAUNCH_LOCK_TIMEOUT", Default: "10s",
			Usage: "longest wait for the CLI's auth.json locks before giving up (a transient failure)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.LockTimeout, raw, false) },
		},
		{
			Flag: "min-backoff", Env: "CODEX_LAUNCH_MIN_BACKOFF", Default: shortDur(authwatch.DefaultMinBackoff),
			Usage: "first retry delay after a transient failure; it doubles up to --max-backoff (Retry-After is honoured)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.MinBackoff, raw, false) },
		},
		{
			Flag: "max-backoff", Env: "CODEX_LAUNCH_MAX_BACKOFF", Default: shortDur(authwatch.DefaultMaxBackoff),
			Usage: "longest retry delay after transient failures (never so late that the token expires first)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.MaxBackoff, raw, false) },
		},
		{
			Flag: "recheck-window", Env: "CODEX_LAUNCH_RECHECK_WINDOW", Default: shortDur(authwatch.DefaultRecheckWindow),
			Usage: "after a permanent answer, watch auth.json this long for a token rotated by the CLI before declaring the credential dead (0: at once)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.RecheckWindow, raw, true) },
		},
		{
			Flag: "poll-interval", Env: "CODEX_LAUNCH_POLL_INTERVAL", Default: shortDur(authwatch.DefaultPollInterval),
			Usage: "while the watchdog waits, how often it looks whether auth.json changed (a new login, the CLI's refresh)",
			Set:   func(c *Config, raw string) error { return setDuration(&c.PollInterval, raw, false) },
		},
	}
}

func bootOptions() []option {
	return []option{
		{
			Flag: "user", Env: "CODEX_LAUNCH_USER", Default: "",
			Usage: "NAME|UID[:GROUP|GID]: prepare CODEX_HOME for this user and drop to it before the prime",
			Set: func(c *Config, raw string) error {
				if raw != "" {
					if err := boot.CheckUserSpec(raw); err != nil {
						return err
					}
				}
				c.User = raw
				return nil
			},
		},
		{
			Flag: "env-dir", Env: "CODEX_LAUNCH_ENV_DIR", Default: "",
			Usage: "a directory of files, one variable each (name = file name, value = content), loaded at boot",
			Set:   func(c *Config, raw string) error { c.EnvDir = raw; return nil },
		},
		{
			Flag: "prime-timeout", Env: "CODEX_LAUNCH_PRIME_TIMEOUT", Default: "45s",
			Usage: "longest time the refresh before the child starts may take",
			Set:   func(c *Config, raw string) error { return setDuration(&c.PrimeTimeout, raw, false) },
		},
		{
			Flag: "require-auth", Env: "CODEX_LAUNCH_REQUIRE_AUTH", Default: "false", Bool: true,
			Usage: "exit 125 instead of starting the child when the credential is dead",
			Set:   func(c *Config, raw string) error { return setBool(&c.RequireAuth, raw) },
		},
		// The variables that carry a whole credential have no flag (argv is
		// readable by every process); boot reads them (boot.AuthVariables).
		{
			Env: "CODEX_AUTH_JSON", Default: "", Secret: true,
			Usage: "an auth.json to seed CODEX_HOME with (never replaces a fresher rotated file); removed from the child's environment",
		},
		{
			Env: "CODEX_CHATGPT_AUTH_JSON", Default: "", Secret: true,
			Usage: "alias of CODEX_AUTH_JSON (CODEX_AUTH_JSON wins when both are set)",
		},
	}
}

func processOptions() []option {
	return []option{
		{
			Flag: "stop-timeout", Env: "CODEX_LAUNCH_STOP_TIMEOUT", Default: "8s",
			Usage: "grace after a stop signal before the child's process group gets SIGKILL",
			Set:   func(c *Config, raw string) error { return setDuration(&c.StopTimeout, raw, false) },
		},
		{
			Flag: "stop-signals", Env: "CODEX_LAUNCH_STOP_SIGNALS", Default: "TERM,INT,QUIT",
			Usage: "signals that are forwarded and also start the stop grace timer",
			Set: func(c *Config, raw string) error {
				sigs, err := signals.ParseList(raw) // refuses an empty list
				if err != nil {
					return err
				}
				c.StopSignals = sigs
				return nil
			},
		},
		{
			Flag: "signal-group", Env: "CODEX_LAUNCH_SIGNAL_GROUP", Default: "false", Bool: true,
			Usage: "forward signals to the child's whole process group, not just the child",
			Set:   func(c *Config, raw string) error { return setBool(&c.SignalGroup, raw) },
		},
		{
			Flag: "rewrite", Env: "CODEX_LAUNCH_REWRITE", Default: "",
			Usage: "rewrite forwarded signals, e.g. TERM:INT,USR1:0 (0 drops the signal)",
			Set: func(c *Config, raw string) error {
				rw, err := signals.ParseRewrite(raw)
				if err != nil {
					return err
				}
				c.Rewrite = rw
				return nil
			},
		},
		{
			Flag: "exit-zero", Env: "CODEX_LAUNCH_EXIT_ZERO", Default: "",
			Usage: "child exit codes reported as 0, e.g. 143 (comma-separated)",
			Set: func(c *Config, raw string) error {
				var codes []int
				for _, s := range splitList(raw) {
					n, err := strconv.Atoi(s)
					if err != nil || n < 0 || n > 255 {
						return fmt.Errorf("%q is not an exit code 0-255", s)
					}
					codes = append(codes, n)
				}
				c.ExitZero = codes
				return nil
			},
		},
		{
			Flag: "pdeathsig", Env: "CODEX_LAUNCH_PDEATHSIG", Default: "",
			Usage: "signal the child gets when codex-launch's parent dies (when not PID 1), e.g. TERM; empty: none",
			Set: func(c *Config, raw string) error {
				if strings.TrimSpace(raw) == "" {
					c.PDeathSig = 0
					return nil
				}
				sig, err := signals.Parse(raw)
				if err != nil {
					return err
				}
				c.PDeathSig = sig
				return nil
			},
		},
	}
}

func logOptions() []option {
	return []option{
		{
			Flag: "log-level", Env: "CODEX_LAUNCH_LOG_LEVEL", Default: "info",
			Usage: "trace, debug, info, warn or error",
			Set: func(c *Config, raw string) error {
				lvl := hclog.LevelFromString(strings.TrimSpace(raw))
				if lvl == hclog.NoLevel || lvl == hclog.Off {
					return errors.New("want trace, debug, info, warn or error")
				}
				c.LogLevel = lvl
				return nil
			},
		},
		{
			Flag: "log-format", Env: "CODEX_LAUNCH_LOG_FORMAT", Default: "text",
			Usage: "text or json",
			Set: func(c *Config, raw string) error {
				switch v := strings.ToLower(strings.TrimSpace(raw)); v {
				case "text", "json":
					c.LogFormat = v
					return nil
				}
				return errors.New("want text or json")
			},
		},
	}
}

// shortDur shows a default duration as a person writes it: 10m, not 10m0s.
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
