// Command codex-launch is a container init (PID 1) for the Codex CLI on a
// ChatGPT-subscription login, with a credential watchdog beside the child.
//
// This package only wires: it reads the configuration table, sets up logging,
// dispatches subcommands and builds the oklog/run group. The work is done in
// the packages authwatch, supervise, signals and boot.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/boot"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes of codex-launch itself (the child's own codes pass through).
const (
	exitOK       = 0
	exitFailed   = 1
	exitLaunch   = 125 // codex-launch failed before the child ran, or a usage error
	exitNoExec   = 126
	exitNotFound = 127
)

// Subcommand names. A program of the same name runs as the child after "--".
const (
	cmdRefresh = "refresh"
	cmdStatus  = "status"
	cmdHealth  = "health"
)

// program is one invocation: its streams and environment, passed in so tests
// run it in-process.
type program struct {
	stdout, stderr io.Writer
	environ        []string
	table          []option
	// launch runs the launcher with the resolved configuration and the
	// environment it was resolved from; a field so that tests of the
	// configuration stop short of booting and starting a child.
	launch func(cfg *Config, env []string, log hclog.Logger, argv []string) int
}

func main() {
	p := &program{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		environ: os.Environ(),
		table:   optionTable(),
	}
	p.launch = p.launcher
	os.Exit(p.run(os.Args[1:]))
}

// run reads the command line, resolves the configuration once (flags, then
// the env directory, then the environment, then defaults, for every command
// alike) and dispatches.
func (p *program) run(args []string) int {
	given := map[string]string{}
	ps := newParser("codex-launch", p.table, given)
	showVersion := ps.fs.Bool("version", false, "print the version and exit")
	showHelp := ps.fs.Bool("help", false, "print this help and exit")
	helpMarkdown := ps.fs.Bool("help-markdown", false, "print the option table in Markdown")
	rest, err := ps.parseFlags(args)
	switch {
	case errors.Is(err, flag.ErrHelp), err == nil && *showHelp:
		writeHelp(p.stdout, p.table)
		return exitOK
	case err != nil:
		return p.usageFailure(err)
	case *helpMarkdown:
		fmt.Fprint(p.stdout, flagsMarkdown(p.table))
		return exitOK
	case *showVersion:
		fmt.Fprintln(p.stdout, versionLine())
		return exitOK
	}

	afterDashes := len(args) > len(rest) && args[len(args)-len(rest)-1] == "--"
	sub := subcommandCall{}
	if len(rest) > 0 && !afterDashes {
		switch rest[0] {
		case cmdRefresh, cmdStatus, cmdHealth:
			sub.name = rest[0]
			if code, ok := sub.parseFlags(p, rest[1:], given); !ok {
				return code
			}
			rest = nil
		}
	}
	if sub.name == "" && len(rest) == 0 {
		return p.usageFailure(errors.New("no COMMAND to run (see codex-launch --help)"))
	}
	if afterDashes {
		if err := flagAsCommand(p.table, rest[0]); err != nil {
			return p.usageFailure(err)
		}
	}

	env, events, err := p.environment(given)
	if err != nil {
		if sub.name == cmdStatus || sub.name == cmdHealth {
			// A probe run as a user who may not read the secrets still
			// judges, with the environment's settings, and says so.
			fmt.Fprintf(p.stderr, "codex-launch: %v; using the environment's settings alone\n", err)
			env, events = p.environ, nil
		} else {
			return p.usageFailure(err)
		}
	}
	cfg := &Config{}
	if err := resolve(cfg, p.table, given, lookupIn(env)); err != nil {
		return p.usageFailure(err)
	}
	log := newLogger(cfg, p.stderr)
	events.replay(log.Named("boot"))

	switch sub.name {
	case cmdRefresh:
		return p.refresh(cfg, env, log, sub.once)
	case cmdStatus:
		return p.status(cfg, env, sub.json)
	case cmdHealth:
		return p.health(cfg, env)
	}
	return p.launch(cfg, env, log, rest)
}

// subcommandCall is a subcommand and its own flags.
type subcommandCall struct {
	name       string
	once, json bool
}

// parseFlags reads the subcommand's flags (the global ones are accepted there
// too, into given). ok is false when the caller must exit with code.
func (c *subcommandCall) parseFlags(p *program, args []string, given map[string]string) (code int, ok bool) {
	ps := newParser("codex-launch "+c.name, p.table, given)
	switch c.name {
	case cmdRefresh:
		ps.fs.BoolVar(&c.once, "once", false, "one pass, then exit with its outcome")
	case cmdStatus:
		ps.fs.BoolVar(&c.json, "json", false, "print JSON")
	}
	rest, err := ps.parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(p.stdout, p.table)
		return exitOK, false
	}
	if err != nil {
		return p.usageFailure(err), false
	}
	if len(rest) > 0 {
		return p.usageFailure(fmt.Errorf("%s takes no arguments, got %q", c.name, rest[0])), false
	}
	return 0, true
}

// environment is the process environment with the env directory, when one is
// configured (by flag or variable), applied over it: its values win over the
// environment's. Reading the directory writes nothing; what it would log is
// kept for the logger that the configuration makes.
func (p *program) environment(given map[string]string) ([]string, logEvents, error) {
	dir, _ := valueOf(optionByFlag(p.table, "env-dir"), given, lookupIn(p.environ))
	if dir == "" {
		return p.environ, nil, nil
	}
	rec := &logRecorder{}
	vars, err := boot.LoadEnvDir(dir, rec.logger())
	if err != nil {
		return nil, nil, err
	}
	return boot.MergeEnv(p.environ, vars), rec.events, nil
}

// lookupIn is a getenv for environ (the last definition wins).
func lookupIn(environ []string) func(string) string {
	return func(name string) string {
		v, _ := boot.LookupEnv(environ, name)
		return v
	}
}

// subcommandHint is a hint for a command that was not found and looks like a
// mistyped subcommand or flag ("help", "version", "stauts"); "" otherwise.
func subcommandHint(command string) string {
	switch strings.TrimLeft(command, "-") {
	case "help", "h":
		return "to see the usage: codex-launch --help"
	case "version", "v":
		return "to see the version: codex-launch --version"
	}
	for _, sub := range []string{cmdRefresh, cmdStatus, cmdHealth} {
		if editDistance(command, sub) <= 2 {
			return fmt.Sprintf("did you mean the subcommand: codex-launch %s?", sub)
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// flagAsCommand refuses a command that is one of codex-launch's own flags.
// An image's ENTRYPOINT ends in "--", so `docker run IMAGE --log-level debug`
// puts the flag where the command goes; "--" keeps meaning "no more flags"
// (a child's argv is never rewritten), and the error says what works instead:
// the option's variable, or --entrypoint codex-launch.
func flagAsCommand(table []option, arg string) error {
	if !strings.HasPrefix(arg, "-") {
		return nil
	}
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, o := range table {
		if o.Flag == "" || o.Flag != name {
			continue
		}
		instead := "with --entrypoint codex-launch, put it before \"--\""
		if o.Env != "" {
			instead = "set " + o.Env + " (docker run -e " + o.Env + "=...), or " + instead
		}
		return usageErrorf("the COMMAND after \"--\" is %q, codex-launch's own flag --%s: flags go before \"--\" (in an image whose ENTRYPOINT ends in \"--\", %s)",
			arg, o.Flag, instead)
	}
	return nil
}

// usageFailure reports a configuration mistake: nothing has happened yet.
func (p *program) usageFailure(err error) int {
	fmt.Fprintf(p.stderr, "codex-launch: %v\n", err)
	return exitLaunch
}
