package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/boot"
)

// newWatchdog builds the watchdog of CODEX_HOME dir from the configuration,
// with the credential store the fleet options chose (buildStore: nil is the
// local auth.json alone). The endpoint is built only for a refresh owner: a
// watcher never POSTs. ctx bounds building the store only; redeeming is
// authwatch.Config.Redeeming (nil: none). The returned function closes the
// store (a shared store's follower stops with it).
func newWatchdog(ctx context.Context, cfg *Config, env []string, dir string, log hclog.Logger, redeeming func()) (*authwatch.Watchdog, func(), error) {
	home := authwatch.Home{Dir: dir, LockTimeout: cfg.LockTimeout}
	wc := authwatch.Config{
		Home:   home,
		Policy: refreshPolicy(cfg),
		Owner:  cfg.RefreshOwner,
		Logger: log,

		MinBackoff:    cfg.MinBackoff,
		MaxBackoff:    cfg.MaxBackoff,
		RecheckWindow: cfg.RecheckWindow,
		PollInterval:  cfg.PollInterval,
		Redeeming:     redeeming,
	}
	if wc.RecheckWindow == 0 {
		wc.RecheckWindow = -1 // authwatch reads 0 as "default", negative as none
	}
	if wc.Owner {
		var err error
		if wc.Endpoint, err = authwatch.NewEndpoint(cfg.TokenURL, cfg.ClientID, cfg.RefreshTimeout); err != nil {
			return nil, nil, fmt.Errorf("token endpoint: %w", err)
		}
	}
	store, err := buildStore(ctx, cfg, env, home, log)
	if err != nil {
		return nil, nil, err
	}
	closeStore := func() {}
	if store != nil { // a nil *fleet.Running in wc.Store would be a non-nil Store
		wc.Store, wc.StoreName = store, store.String()
		closeStore = func() { _ = store.Close() }
	}
	w, err := authwatch.New(wc)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return w, closeStore, nil
}

// refresh is `refresh --once` (one pass, exit codes 0 to 3) and `refresh`
// (the loop alone, for images that keep their own init, until SIGTERM/INT).
//
// The one pass leaves TERM, INT and HUP at their default action until it is
// about to send a refresh token: a signal before that ends the process at
// once with nothing half-written (every write is an atomic rename, a later
// pass removes a temporary file left behind, the locks die with the
// process), and a pass that finds nothing to do never pays for the Go
// runtime's signal machinery, a third of its start-up. As PID 1 the
// runtime cannot die of the signal and exits 2 instead.
//
// From the POST on they are ignored, so the answer is always committed: the
// pass then runs to its end, bounded by the refresh timeout, the lock
// timeout for auth.json.lock, and after a refusal the few seconds' recheck
// for a token rotated elsewhere. One signal can still slip through: one
// whose handler had already decided to end the process when the ignore was
// set. The token goes out only once the connection is made (for the real
// endpoint DNS, TCP and TLS, tens of milliseconds), and such a handler ends
// the process within microseconds, so that signal ends the pass before
// anything is spent, unless its thread is held off the CPU for longer: then
// it is a SIGKILL during the POST, the token spent and auth.json intact, as
// the crash tests show.
func (p *program) refresh(cfg *Config, env []string, log hclog.Logger, once bool) int {
	l := log.Named("launcher")
	// The libraries that read the process environment (the token
	// endpoint's proxy, PostgreSQL's PG* variables) see the same one
	// environment as the configuration, as the launcher's do.
	if err := applyEnviron(env); err != nil {
		l.Error("cannot apply the environment", "error", err)
		return exitLaunch
	}
	ctx, stop := context.Background(), func() {}
	var redeeming func()
	if once {
		redeeming = func() { signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP) }
	} else {
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	}
	defer stop()
	w, closeStore, err := newWatchdog(ctx, cfg, env, cfg.ResolvedCodexHome(boot.CurrentHome(env)), log, redeeming)
	if err != nil {
		l.Error("cannot start the watchdog", "error", err)
		return exitLaunch
	}
	defer closeStore()
	if once {
		outcome, err := w.Pass(ctx)
		// A failure was logged by the pass itself, with what to do.
		if err != nil {
			l.Debug("refresh --once done", "outcome", outcome.String(), "exit", int(outcome), "error", err)
		} else {
			l.Info("refresh --once done", "outcome", outcome.String(), "exit", int(outcome))
		}
		return int(outcome)
	}
	if err := w.Run(ctx); err != nil {
		l.Error("watchdog stopped", "error", err)
		return exitFailed
	}
	return exitOK
}
