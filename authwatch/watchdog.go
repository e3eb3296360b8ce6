package authwatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Outcome is a pass's result; its value is `refresh --once`'s exit code.
type Outcome int

const (
	OutcomeRefreshed   Outcome = 0
	OutcomeNothingToDo Outcome = 1
	OutcomeTransient   Outcome = 2
	OutcomePermanent   Outcome = 3
)

func (o Outcome) String() string {
	if names := [...]string{"refreshed", "nothing_to_do", "transient_failure", "permanent_failure"}; o >= 0 && int(o) < len(names) {
		return names[o]
	}
	return "outcome_" + strconv.Itoa(int(o))
}

// Defaults of Config's tuning knobs.
const (
	DefaultMinBackoff    = 10 * time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultPollInterval  = 5 * time.Second
	DefaultRecheckWindow = 3 * time.Second
	DefaultRecheckEvery  = 100 * time.Millisecond
	expiryGuard          = time.Minute
	maxJitter            = 30 * time.Second
	jitterFraction       = 0.05
	defaultStoreName     = "file"
)

// Config configures a Watchdog. Zero values take the defaults.
type Config struct {
	Home Home
	// Store holds the credential; nil means the file store of Home.
	Store Store
	// StoreName names the store in the status file ("file", "postgres").
	StoreName string
	// Endpoint is the token endpoint; required when Owner.
	Endpoint *Endpoint
	Policy   Policy
	// Owner: this process may redeem the refresh token. False
	// (CODEX_AUTH_REFRESH_OWNER=0) watches and reports, never POSTs.
	Owner  bool
	Logger hclog.Logger

	// Now and Sleep are the clock; tests inject a fake one. Sleep returns
	// early with ctx's error when ctx is done.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a random extra delay for a wait of d; nil means up to
	// 5% of d (at most 30 s). Tests pass a function returning 0.
	Jitter func(d time.Duration) time.Duration

	// MinBackoff and MaxBackoff bound the retry delay after a transient
	// failure (doubling from min to max, honouring Retry-After).
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often Run looks whether auth.json changed while
	// it waits (a stat, and a read only when the stat changed).
	PollInterval time.Duration
	// RecheckWindow is how long a pass that got a permanent answer watches
	// auth.json for a refresh token rotated by someone else (the CLI)
	// before it declares the credential dead; RecheckEvery is the re-read
	// period within it.
	RecheckWindow, RecheckEvery time.Duration
	// PID is written to the status file; 0 means os.Getpid().
	PID int
	// Redeeming, when set, is called once just before a refresh token is
	// sent. A one-shot process that leaves SIGTERM at its default action
	// (so that a pass with nothing to send never pays for signal handling)
	// shields itself here: from this point, dying would lose a token the
	// endpoint may already have redeemed.
	Redeeming func()
}

// Watchdog refreshes one credential ahead of expiry.
type Watchdog struct {
	cfg   Config
	store Store
	log   hclog.Logger
	loop  bool

	// State carried from pass to pass (the loop is single-threaded).
	failures    int
	lastErr     *RefreshError
	lastSuccess time.Time
	// shortWarned: the short-lifetime warning was logged (once is enough).
	shortWarned bool
	// pending is a refresh's answer that is not in the store yet (its
	// commit failed): the token it replaced is spent, so until pending is
	// written or superseded no POST is made.
	pending *AuthFile
	// unreadableSaid is the last unreadable auth.json reason logged.
	unreadableSaid string
	// deadToken is the SHA-256 of a refresh token the endpoint rejected
	// for good: it is never sent again. Only a hash is kept.
	deadToken [32]byte
	hasDead   bool

	// priming is set by startPrime: Run first waits for that pass, then
	// for the check it scheduled.
	priming *primePass
}

// New checks cfg and fills in the defaults.
func New(cfg Config) (*Watchdog, error) {
	if cfg.Home.Dir == "" {
		return nil, errors.New("authwatch: CODEX_HOME directory is empty")
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy()
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("authwatch: %w", err)
	}
	if cfg.Owner && cfg.Endpoint == nil {
		return nil, errors.New("authwatch: a refresh owner needs a token endpoint")
	}
	// A refresh's commit must be durable when it returns (Home.DeferDirSync).
	if fs, ok := cfg.Store.(*FileStore); cfg.Home.DeferDirSync != nil || ok && fs.Home.DeferDirSync != nil {
		return nil, errors.New("authwatch: a Home that defers its directory fsync cannot refresh")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Jitter == nil {
		cfg.Jitter = defaultJitter
	}
	cfg.MinBackoff = positive(cfg.MinBackoff, DefaultMinBackoff)
	cfg.MaxBackoff = max(positive(cfg.MaxBackoff, DefaultMaxBackoff), cfg.MinBackoff)
	cfg.PollInterval = positive(cfg.PollInterval, DefaultPollInterval)
	cfg.RecheckEvery = positive(cfg.RecheckEvery, DefaultRecheckEvery)
	if cfg.RecheckWindow == 0 {
		cfg.RecheckWindow = DefaultRecheckWindow
	}
	cfg.RecheckWindow = max(cfg.RecheckWindow, 0) // negative: no recheck
	cfg.PID = cmp.Or(cfg.PID, os.Getpid())
	cfg.StoreName = cmp.Or(cfg.StoreName, defaultStoreName)
	log := cfg.Logger.Named("authwatch")
	st := cfg.Store
	if st == nil {
		st = &FileStore{Home: cfg.Home, Logger: log}
	}
	return &Watchdog{cfg: cfg, store: st, log: log}, nil
}

// positive is d, or def when d is not positive.
func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func defaultJitter(d time.Duration) time.Duration {
	limit := min(time.Duration(float64(d)*jitterFraction), maxJitter)
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
