package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/oklog/run"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/boot"
	"github.com/molecule-ai/codex-launch/signals"
	"github.com/molecule-ai/codex-launch/supervise"
)

// launcher is `codex-launch [flags] [--] COMMAND [ARGS...]`: catch signals,
// boot, prime, then one oklog/run group of the child, the signal forwarder
// and the watchdog. It returns the exit code: the child's, or 125 when
// codex-launch failed before the child ran, or 128+N when stop signal N came
// before the child existed.
func (p *program) launcher(cfg *Config, env []string, log hclog.Logger, argv []string) int {
	// The supervisor first: its SIGCHLD is registered before the signal
	// loop's, which would otherwise queue it behind all of theirs.
	sup, err := supervise.New(supervise.Options{
		StopTimeout:   cfg.StopTimeout,
		ZeroExitCodes: cfg.ExitZero,
		Logger:        log.Named("supervise"),
	})
	if err != nil {
		fmt.Fprintln(p.stderr, "codex-launch: cannot supervise:", err)
		return exitLaunch
	}
	defer sup.Close()
	// Then the signal loop, so a TERM during boot or prime is seen and
	// honoured, not lost (PID 1 ignores a signal it has no handler for). Only
	// the pure parse of the arguments came before: the registrations are a
	// cost the subcommands, which supervise no child, do not pay. The stop
	// signals, and those whose default would end the launcher (HUP, PIPE,
	// ...), are caught at once, the rest while boot runs; the child starts
	// only once all are.
	fwd := signals.ListenStopsFirst(signals.Options{
		Rewrite:     cfg.Rewrite,
		Group:       cfg.SignalGroup,
		StopSignals: cfg.StopSignals,
		Logger:      log.Named("signals"),
	})
	// The parent as it was at start: the parent-death setting comes after
	// the drop to --user (which clears it), and a parent that died in
	// between must still be noticed.
	parent := os.Getppid()
	l := log.Named("launcher")
	if err := supervise.BecomeSubreaper(); err != nil {
		l.Warn("not a subreaper: orphans of the child go to the real init, not reaped here", "error", err)
	}

	// Boot and prime end promptly on a stop signal: each step is atomic,
	// and no child exists yet.
	ctx, release := fwd.StopContext(context.Background())
	defer release()
	stopped := func() (int, bool) {
		if sig, ok := fwd.Stopped(); ok {
			fwd.Consume()
			l.Info("stopped before the child started", "signal", signals.Name(sig))
			return 128 + int(sig), true
		}
		return 0, false
	}

	// Nothing is written before the command is known to run: who it runs
	// as, where CODEX_HOME is, and that the program is there for that user.
	bootCfg := boot.Config{
		CodexHome:   cfg.CodexHome,
		User:        cfg.User,
		Environ:     env,
		Command:     argv,
		Logger:      log,
		LockTimeout: cfg.LockTimeout,
	}
	target, err := boot.ResolveTarget(bootCfg)
	if err != nil {
		l.Error("the child was not started", "error", err)
		return exitLaunch
	}
	if _, err := supervise.Resolve(argv[0], env, identityOf(target.User)); err != nil {
		var se *supervise.StartError
		code := exitLaunch
		if errors.As(err, &se) {
			code = se.Code
		}
		l.Error("cannot run the command; nothing was changed", "error", err, "exit", code)
		if hint := subcommandHint(argv[0]); hint != "" && code == exitNotFound {
			l.Error(hint)
		}
		return code
	}

	res, err := boot.Run(ctx, bootCfg, target)
	// Boot's last fsync runs beside the prime and the child's start; every
	// way out from here waits for it, the normal one as soon as the child
	// runs.
	durable := sync.OnceFunc(func() {
		if err := res.WaitDurable(); err != nil {
			l.Warn("fsync of CODEX_HOME after seeding auth.json failed: the seeded file may not survive a crash", "error", err)
		}
	})
	defer durable()
	if code, ok := stopped(); ok {
		return code
	}
	if err != nil {
		l.Error("boot failed; the child was not started", "error", err)
		return exitLaunch
	}

	// The child's environment: boot's (env directory applied, HOME of the
	// user) without any secret option's variable (a credential, the store
	// URL with its password, sealing keys): the child has no use for them
	// and its environment is readable by everything it runs. The launcher's
	// own environment becomes the same (start.sh sourced its secrets into
	// the shell, so everything after saw them): the env directory's
	// variables are visible to every package from here on.
	childEnv := boot.UnsetEnv(res.Env, secretVariables(p.table)...)
	if err := applyEnviron(childEnv); err != nil {
		l.Error("cannot apply the environment after boot", "error", err)
		return exitLaunch
	}
	// The drop to --user cleared any parent-death setting; ask for it now.
	if err := supervise.SetParentDeathSignalFor(cfg.PDeathSig, parent); err != nil {
		l.Warn("parent-death signal not set", "error", err)
	}

	// One --prime-timeout covers the shared store's first sync (buildStore
	// waits at most that long from now) and the prime pass together.
	primeBy := time.Now().Add(cfg.PrimeTimeout)
	w, closeStore, err := newWatchdog(ctx, cfg, res.CodexHome, log, nil)
	if err != nil {
		l.Error("cannot start the watchdog; the child was not started", "error", err)
		return exitLaunch
	}
	// A shared store's follower runs until codex-launch exits.
	defer closeStore()

	pr := w.StartPrime()
	code, exit, pending := p.prime(ctx, cfg, pr, primeBy, authwatch.Home{Dir: res.CodexHome}, l)
	if exit {
		pr.Finish() // its status file says why
		return code
	}
	if code, ok := stopped(); ok {
		pr.Finish()
		return code
	}
	if !pending {
		if out, _ := pr.Result(); out == authwatch.OutcomePermanent {
			l.Debug("starting the child with a dead credential (--require-auth would refuse)")
		}
	}
	release()
	// From here on, every return path must finish the prime pass first.
	defer pr.Finish()

	// From here the signal loop keeps what comes while the child starts,
	// for the group's signal actor to forward.
	fwd.Hold()
	err = sup.Start(supervise.Spec{
		Argv: argv,
		Env:  childEnv,
		// The child never outlives codex-launch, even a SIGKILLed one.
		ParentDeathSignal: syscall.SIGKILL,
		Foreground:        true,
	})
	if err != nil {
		var se *supervise.StartError
		code := exitLaunch
		if errors.As(err, &se) {
			code = se.Code
		}
		l.Error("cannot start the child", "error", err, "exit", code)
		return code
	}
	l.Debug("child started", "pid", sup.Pid(), "command", argv[0])
	durable()
	return runGroup(sup, fwd, w, pr, pending, l)
}

// prime waits for the prime pass until by: what is left of --prime-timeout
// after the shared store's first sync. It returns
// (code, true) when codex-launch must exit instead of starting the child: a
// stop signal (ctx), or a dead credential with --require-auth. Otherwise the
// child starts; pending is true when the pass is still running.
func (p *program) prime(ctx context.Context, cfg *Config, pr *authwatch.Priming, by time.Time, home authwatch.Home, l hclog.Logger) (code int, exit bool, pending bool) {
	t := time.NewTimer(max(time.Until(by), 0))
	defer t.Stop()
	select {
	case <-pr.Done():
	case <-t.C:
		if code, exit := requireAuth(cfg, home, false, l); exit {
			return code, true, true
		}
		l.Warn("prime: no answer within --prime-timeout; starting the child, the refresh goes on beside it", "prime_timeout", cfg.PrimeTimeout)
		return 0, false, true
	case <-ctx.Done():
		select {
		case <-pr.Done():
		default:
			l.Info("stop signal during the prime: finishing the refresh in flight so no redeemed token is lost (at most --refresh-timeout)")
			pr.Finish()
		}
		return 0, false, false // the caller sees the stop signal and exits 128+N
	}
	code, exit = requireAuth(cfg, home, reportPrime(pr, l), l)
	return code, exit, false
}

// requireAuth is --require-auth after the prime: with it set, a start
// without a usable credential (missing, unreadable by this process,
// malformed, tokenless, or dead) exits 125 instead of starting the child.
func requireAuth(cfg *Config, home authwatch.Home, dead bool, l hclog.Logger) (code int, exit bool) {
	if !cfg.RequireAuth {
		return 0, false
	}
	why := home.Unusable()
	if dead {
		why = "the refresh token was refused for good"
	}
	if why == "" {
		return 0, false
	}
	l.Error("--require-auth is set and there is no usable credential: not starting the child; log in (codex login) or inject CODEX_AUTH_JSON", "reason", why, "exit", exitLaunch)
	return exitLaunch, true
}

// reportPrime notes the prime's outcome; it returns true when the credential
// is dead. The watchdog has already logged the outcome (a refresh, a failure
// with what to do), so this adds nothing at the default level.
func reportPrime(pr *authwatch.Priming, l hclog.Logger) (dead bool) {
	out, err := pr.Result()
	if err != nil {
		l.Debug("prime done", "outcome", out.String(), "error", err)
	} else {
		l.Debug("prime done", "outcome", out.String())
	}
	return out == authwatch.OutcomePermanent
}

// errChildExited ends the group: only the child's exit may end it.
var errChildExited = errors.New("child exited")

// runGroup runs the child, the signal loop and the watchdog as one oklog/run
// group. The child's exit ends it; the other actors return only when
// interrupted (one that fails early logs and then waits), so nothing but the
// child ends the group. The watchdog's interrupt cancels its context: a
// refresh whose POST has redeemed a token still commits before Run returns
// (authwatch's promise), one that has not started is abandoned.
func runGroup(sup *supervise.Supervisor, fwd *signals.Forwarder, w *authwatch.Watchdog, pr *authwatch.Priming, pending bool, l hclog.Logger) int {
	var g run.Group
	code := exitLaunch
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			c, err := sup.Wait(ctx)
			code = c
			if err != nil {
				l.Error("waiting for the child", "error", err)
			}
			return errChildExited
		}, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			if err := fwd.Run(ctx, sup); err != nil {
				l.Error("signal forwarding stopped; the child runs on", "error", err)
				<-ctx.Done()
			}
			return nil
		}, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			if pending {
				// The prime outlasted --prime-timeout: let it finish
				// (its outcome is logged) before the loop takes over.
				select {
				case <-pr.Done():
					reportPrime(pr, l)
				case <-ctx.Done():
					pr.Finish()
					return nil
				}
			}
			// The loop continues the prime, once it has written its status.
			if err := w.Run(ctx); err != nil && ctx.Err() == nil {
				l.Error("the credential watchdog stopped; the child runs on", "error", err)
				<-ctx.Done()
			}
			return nil
		}, func(error) { cancel() })
	}
	_ = g.Run()
	l.Debug("exiting with the child's status", "exit", code)
	return code
}

// identityOf is u as supervise judges execute permission; nil for the
// current user.
func identityOf(u *boot.User) *supervise.Identity {
	if u == nil {
		return nil
	}
	return &supervise.Identity{UID: u.UID, GID: u.GID, Groups: u.Groups}
}

// applyEnviron makes the process environment equal to environ.
func applyEnviron(environ []string) error {
	want := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			want[k] = v
		}
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "" {
			if _, keep := want[k]; !keep {
				os.Unsetenv(k)
			}
		}
	}
	for k, v := range want {
		if cur, ok := os.LookupEnv(k); ok && cur == v {
			continue
		}
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return nil
}

// secretVariables are the variables of the options marked Secret.
func secretVariables(table []option) []string {
	var names []string
	for _, o := range table {
		if o.Secret {
			names = append(names, o.Env)
		}
	}
	return names
}
