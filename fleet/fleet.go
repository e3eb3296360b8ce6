// Package fleet lets the launchers of many workspaces share one credential
// through PostgreSQL: exactly one of them refreshes each generation (under a
// row lock that dies with its connection), and every other one adopts the new
// generation into its own auth.json within seconds (LISTEN/NOTIFY, with a
// periodic read as a fallback). A credential that a workspace's CLI refreshed
// on its own is published at once, so nobody spends its old refresh token.
//
// A Fleet is two things: an authwatch.Store (Load/Update), so the authwatch
// watchdog runs on top of it unchanged, and a follower actor (Run) that owns
// the one database connection, keeps the local auth.json in step and
// reconnects with backoff when the database is away.
//
// Through a transaction pooler (Config.Pooled) there is no LISTEN: the
// follower polls, rarely while the stored generation is far from due and
// often (with jitter) from shortly before the moment its access token
// enters the refresh margin until a new generation appears, so a fleet of
// thousands learns of a refresh within seconds at a small steady load. While it is away the
// child keeps running on the local credential and nobody refreshes alone,
// unless the operator opted into Config.Fallback.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
	"github.com/molecule-ai/codex-launch/fleet/seal"
)

// ErrStoreUnavailable is wrapped by Update while the database cannot be
// reached: a transient condition, never a dead credential.
var ErrStoreUnavailable = errors.New("credential store unavailable")

// DefaultName is the credential name when none is configured.
const DefaultName = "default"

// Config configures a Fleet.
type Config struct {
	// URL is the PostgreSQL connection URL (postgres://...). Its password
	// is never logged.
	URL string
	// Name of the credential; several credentials can share one database.
	Name string
	// Keys seal the stored credential (nil: stored in clear).
	Keys *seal.Keyring
	// Home is this workspace's CODEX_HOME, kept in step with the store.
	Home authwatch.Home
	// Fallback lets this launcher refresh the local credential alone while
	// the database is away. Off by default: launchers sharing a credential
	// and refreshing alone spend each other's refresh tokens.
	Fallback bool
	// PollInterval is the fallback read when no notice came (default 30 s);
	// with Pooled, the read while no refresh is near.
	PollInterval time.Duration
	// Pooled: URL leads to a transaction pooler (PgBouncer in transaction
	// mode); see pgstore.Options.Pooled. The follower then polls on the
	// schedule of nextPoll instead of listening.
	Pooled bool
	// FastPollInterval is the read while a refresh is near or due (Pooled;
	// default 2 s, ±20 % jitter like every poll).
	FastPollInterval time.Duration
	// FastWindow is how long after the stored generation fell due the
	// follower keeps polling fast (Pooled; default 60 s: the refresher's
	// watchdog may start up to 30 s late, by its jitter).
	FastWindow time.Duration
	// Policy is the watchdogs' refresh policy: it says when the stored
	// generation falls due (default authwatch.DefaultPolicy()).
	Policy authwatch.Policy
	// LocalInterval is how often the local auth.json is looked at (a stat)
	// to catch a refresh made by the CLI itself (default 1 s).
	LocalInterval time.Duration
	// ReconnectMin and ReconnectMax bound the reconnect backoff
	// (defaults 250 ms and 10 s: a returning database is found within seconds; a connection attempt is cheap).
	ReconnectMin, ReconnectMax time.Duration
	// LockTimeout bounds a wait for another launcher's refresh lock
	// (default pgstore.DefaultLockTimeout). Through a pooler the waiting
	// request is parked, not holding a server session (see Update).
	LockTimeout time.Duration
	// IdleTxTimeout ends the session of a refresher that holds the lock
	// but stops talking to the database (hung, or cut off) for this long,
	// so the lock cannot be held forever. It must exceed the token
	// endpoint's timeout (a POST runs while the lock is held). Default 2 min.
	IdleTxTimeout time.Duration
	// ConnectTimeout bounds one connection attempt (default 10 s).
	ConnectTimeout time.Duration
	// CallTimeout bounds each exchange with the database on a live
	// connection (default pgstore.DefaultCallTimeout): a server that stops
	// answering (a half-open connection) must not hold the follower, and
	// with it Update and the launcher's stop, until TCP keepalive gives up.
	CallTimeout time.Duration
	// By names this launcher in the store (who refreshed a generation).
	By     string
	Logger hclog.Logger
}

// Fleet is the shared store of one credential and its follower.
type Fleet struct {
	cfg  Config
	log  hclog.Logger
	desc string

	mu         sync.Mutex
	queue      []*request
	cancelWait context.CancelFunc
	state      State
	connected  bool
	stored     *authwatch.AuthFile
	changed    chan struct{}
	ready      chan struct{}
	readyOnce  sync.Once
	runDone    chan struct{}

	// stamp is the local auth.json as the follower last saw or wrote it,
	// head the stored generation as its last full read found it, dueSince
	// when the stored generation was first seen due (zero: not due). Only
	// the follower goroutine (Run) touches them.
	stamp    authwatch.Stamp
	head     pgstore.Head
	dueSince time.Time
}

// New checks cfg and returns a Fleet; nothing connects before Run.
func New(cfg Config) (*Fleet, error) {
	if cfg.URL == "" {
		return nil, errors.New("credential store URL is empty")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Not echoed even redacted: a URL that does not parse cannot be
		// trusted to be redacted well.
		return nil, errors.New("credential store: not a postgres URL (value hidden)")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Home.Dir == "" {
		return nil, errors.New("fleet: CODEX_HOME is empty")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.FastPollInterval <= 0 {
		cfg.FastPollInterval = 2 * time.Second
	}
	if cfg.FastWindow <= 0 {
		cfg.FastWindow = time.Minute
	}
	if cfg.Policy == (authwatch.Policy{}) {
		cfg.Policy = authwatch.DefaultPolicy()
	}
	if cfg.LocalInterval <= 0 {
		cfg.LocalInterval = time.Second
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 250 * time.Millisecond
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(10*time.Second, cfg.ReconnectMin)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = pgstore.DefaultCallTimeout
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = pgstore.DefaultLockTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.By == "" {
		host, _ := os.Hostname()
		cfg.By = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	desc := describePostgres(cfg.URL, cfg.Name)
	return &Fleet{
		cfg:     cfg,
		log:     cfg.Logger,
		desc:    desc,
		state:   State{Store: desc, State: "connecting", Since: time.Now()},
		changed: make(chan struct{}, 1),
		ready:   make(chan struct{}),
		runDone: make(chan struct{}),
	}, nil
}

// String describes the store without its password.
func (f *Fleet) String() string { return f.desc }

// Ready is closed once the first attempt to reach the store and bring the
// local auth.json in step has finished, well or not. The launcher waits for
// it (bounded) before its prime pass, so the child starts on the fleet's
// newest generation.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

func (f *Fleet) markReady() { f.readyOnce.Do(func() { close(f.ready) }) }
