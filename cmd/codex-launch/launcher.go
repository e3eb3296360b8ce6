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
// check that the command can run, boot, prime, then one oklog/run group of
// the child, the signal loop and the watchdog. It returns the exit code: the
// child's, or 125 when codex-launch failed before the child ran, 126 or 127
// when the command cannot run, or 128+N when stop signal N came before the
// child existed.
func (p *program) launcher(cfg *Config, env []string, log hclog.Logger, argv []string) int {
	sup, fwd, err := supervision(cfg, log)
	if err != nil {
		fmt.Fprintln(p.stderr, "codex-launch: cannot supervise:", err)
		return exitLaunch
	}
	defer sup.Close()
	// The parent as it was at start: the parent-death setting comes after
	// the drop to --user (which clears it).
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
		sig, ok := fwd.Stopped()
		if ok {
			fwd.Consume()
			l.Info("stopped before the child started", "signal", signals.Name(sig))
		}
		return 128 + int(sig), ok
	}

	bootCfg := boot.Config{
		CodexHome: cfg.CodexHome, User: cfg.User, Environ: env, Command: argv, Logger: log, LockTimeout: cfg.LockTimeout,
	}
	target, code := checkRunnable(bootCfg, argv[0], l)
	if code != 0 {
		return code
	}
	res, err := boot.Run(ctx, bootCfg, target)
	// Boot's last fsync runs beside the prime and the child's start; every
	// way out from here waits for it, the normal one once the child runs.
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
	childEnv, err := p.childEnvironment(res.Env)
	if err != nil {
		l.Error("cannot apply the environment after boot", "error", err)
		return exitLaunch
	}
	if err := supervise.SetParentDeathSignalFor(cfg.PDeathSig, parent); err != nil {
		l.Warn("parent-death signal not set", "error", err)
	}

	// One --prime-timeout covers the shared store's first sync (newWatchdog
	// waits at most that long) and the prime pass together.
	primeBy := time.Now().Add(cfg.PrimeTimeout)
	w, closeStore, err := newWatchdog(ctx, cfg, env, res.CodexHome, log, nil)
	if err != nil {
		l.Error("cannot start the watchdog; the child was not started", "error", err)
		return exitLaunch
	}
	defer closeStore() // a shared store's follower runs until codex-launch exits
	defer w.Close()    // a prime pass the watchdog's Run never took over
	prime := w.Prime(ctx, primeBy)
	if code, ok := stopped(); ok {
		return code
	}
	if prime.Pending {
		l.Warn("prime: no answer within --prime-timeout; starting the child, the refresh goes on beside it", "prime_timeout", cfg.PrimeTimeout)
	}
	if cfg.RequireAuth {
		if why := unusable(prime, authwatch.Home{Dir: res.CodexHome}); why != "" {
			l.Error("--require-auth is set and there is no usable credential: not starting the child; log in (codex login) or inject CODEX_AUTH_JSON", "reason", why, "exit", exitLaunch)
			return exitLaunch
		}
	}
	release()

	// From here the signal loop keeps what comes while the child starts,
	// for the group's signal actor to forward.
	fwd.Hold()
	err = sup.Start(supervise.Spec{
		Argv: argv, Env: childEnv, Foreground: true,
		// The child never outlives codex-launch, even a SIGKILLed one.
		ParentDeathSignal: syscall.SIGKILL,
	})
	if err != nil {
		l.Error("cannot start the child", "error", err, "exit", startErrorCode(err))
		return startErrorCode(err)
	}
	l.Debug("child started", "pid", sup.Pid(), "command", argv[0])
	durable()
	return runGroup(sup, fwd, w, l)
}

// supervision builds the supervisor, then the signal loop, each once with its
// final options. The supervisor comes first: its SIGCHLD is registered before
// the signal loop's, which would otherwise queue it behind all of theirs. The
// loop catches signals at once, so a TERM during boot or prime is honoured,
// not lost (PID 1 ignores a signal it has no handler for): the stop signals
// and those whose default would end the launcher at once, the rest while boot
// runs; the child starts only once all are.
func supervision(cfg *Config, log hclog.Logger) (*supervise.Supervisor, *signals.Forwarder, error) {
	sup, err := supervise.New(supervise.Options{
		StopTimeout: cfg.StopTimeout, ZeroExitCodes: cfg.ExitZero, Logger: log.Named("supervise"),
	})
	if err != nil {
		return nil, nil, err
	}
	fwd := signals.ListenStopsFirst(signals.Options{
		Rewrite: cfg.Rewrite, Group: cfg.SignalGroup, StopSignals: cfg.StopSignals, Logger: log.Named("signals"),
	})
	return sup, fwd, nil
}

// checkRunnable settles, writing nothing, who the child runs as, where
// CODEX_HOME is, and that the command is there for that user. code is the
// exit code when it cannot run (125, 126, 127), 0 otherwise.
func checkRunnable(cfg boot.Config, command string, l hclog.Logger) (boot.Target, int) {
	target, err := boot.ResolveTarget(cfg)
	if err != nil {
		l.Error("the child was not started", "error", err)
		return target, exitLaunch
	}
	if _, err := supervise.Resolve(command, cfg.Environ, identityOf(target.User)); err != nil {
		code := startErrorCode(err)
		l.Error("cannot run the command; nothing was changed", "error", err, "exit", code)
		if hint := subcommandHint(command); hint != "" && code == exitNotFound {
			l.Error(hint)
		}
		return target, code
	}
	return target, 0
}

// startErrorCode is the exit code for a command that could not be started:
// the one supervise classified (126, 127), else 125.
func startErrorCode(err error) int {
	var se *supervise.StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return exitLaunch
}

// childEnvironment is boot's environment (env directory applied, HOME of the
// user) without any secret option's variable (a credential, the store URL
// with its password, sealing keys): the child has no use for them, and its
// environment is readable by everything it runs. The launcher's own
// environment becomes the same, as start.sh's shell did once it had sourced
// its secrets.
func (p *program) childEnvironment(bootEnv []string) ([]string, error) {
	env := boot.UnsetEnv(bootEnv, secretVariables(p.table)...)
	return env, applyEnviron(env)
}

// unusable is why --require-auth refuses to start the child after the prime:
// the credential is dead, or there is no usable one (missing, unreadable by
// this process, malformed, tokenless); "" when it is usable.
func unusable(prime authwatch.PrimeResult, home authwatch.Home) string {
	if prime.Dead() {
		return "the refresh token was refused for good"
	}
	return home.Unusable()
}

// errChildExited ends the group: only the child's exit may end it.
var errChildExited = errors.New("child exited")

// runGroup runs the child, the signal loop and the watchdog as one oklog/run
// group. The child's exit ends it; the other actors return only when
// interrupted (one that fails early logs and then waits), so nothing but the
// child ends the group. The watchdog's interrupt cancels its context: a
// refresh whose POST has redeemed a token still commits before Run returns
// (authwatch's promise), one that has not started is abandoned; Run first
// continues a prime pass that is still running.
func runGroup(sup *supervise.Supervisor, fwd *signals.Forwarder, w *authwatch.Watchdog, l hclog.Logger) int {
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
