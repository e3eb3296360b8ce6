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
	getenv         func(string) string
	environ        []string
	table          []option
	// launch runs the launcher; a field so that tests of the configuration
	// stop short of booting and starting a child. given holds the flags as
	// typed, for re-reading the configuration after the env directory.
	launch func(cfg *Config, given map[string]string, argv []string) int
}

func main() {
	p := &program{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		getenv:  os.Getenv,
		environ: os.Environ(),
		table:   optionTable(),
	}
	p.launch = p.launcher
	os.Exit(p.run(os.Args[1:]))
}

// run parses the global flags and dispatches.
func (p *program) run(args []string) int {
	cfg := &Config{}
	given := map[string]string{}
	ps := newParser("codex-launch", p.table, given)
	showVersion := ps.fs.Bool("version", false, "print the version and exit")
	showHelp := ps.fs.Bool("help", false, "print this help and exit")
	helpMarkdown := ps.fs.Bool("help-markdown", false, "print the option table in Markdown")
	rest, err := ps.parse(cfg, args, p.getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeHelp(p.stdout, p.table)
		return exitOK
	case *showHelp:
		writeHelp(p.stdout, p.table)
		return exitOK
	case *helpMarkdown:
		fmt.Fprint(p.stdout, flagsMarkdown(p.table))
		return exitOK
	case *showVersion:
		fmt.Fprintln(p.stdout, versionLine())
		return exitOK
	case err != nil:
		return p.usageFailure(err)
	}

	afterDashes := len(args) > len(rest) && args[len(args)-len(rest)-1] == "--"
	if len(rest) > 0 && !afterDashes {
		switch rest[0] {
		case cmdRefresh, cmdStatus, cmdHealth:
			return p.subcommand(rest[0], rest[1:], given)
		}
	}
	if len(rest) == 0 {
		return p.usageFailure(errors.New("no COMMAND to run (see codex-launch --help)"))
	}
	return p.launch(cfg, given, rest)
}

// usageFailure reports a configuration mistake: nothing has happened yet.
func (p *program) usageFailure(err error) int {
	fmt.Fprintf(p.stderr, "codex-launch: %v\n", err)
	return exitLaunch
}

// subcommand parses the subcommand's own flags (the global ones are accepted
// there too) and runs it.
func (p *program) subcommand(name string, args []string, given map[string]string) int {
	cfg := &Config{}
	ps := newParser("codex-launch "+name, p.table, given)
	var once, asJSON *bool
	switch name {
	case cmdRefresh:
		once = ps.fs.Bool("once", false, "one pass, then exit with its outcome")
	case cmdStatus:
		asJSON = ps.fs.Bool("json", false, "print JSON")
	}
	rest, err := ps.parse(cfg, args, p.getenv)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(p.stdout, p.table)
		return exitOK
	}
	if err != nil {
		return p.usageFailure(err)
	}
	if len(rest) > 0 {
		return p.usageFailure(fmt.Errorf("%s takes no arguments, got %q", name, rest[0]))
	}
	switch name {
	case cmdRefresh:
		return p.refresh(cfg, newLogger(cfg, p.stderr), *once)
	case cmdStatus:
		return p.status(cfg, *asJSON)
	default:
		return p.health(cfg)
	}
}
