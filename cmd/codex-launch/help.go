package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

const helpHead = `codex-launch: the container init for the Codex CLI on a ChatGPT-subscription login.
It reaps zombies, forwards signals, stops with grace then SIGKILL, exits with the
child's status, and keeps $CODEX_HOME/auth.json refreshed ahead of expiry, exactly
as the CLI would, before the child starts and while it runs.

Usage:
  codex-launch [flags] [--] COMMAND [ARGS...]   boot, refresh if due, run COMMAND, watch the credential
  codex-launch [flags] refresh --once            one refresh pass (exit 0 refreshed, 1 nothing to do,
                                                 2 transient failure, 3 permanent failure)
  codex-launch [flags] refresh                   the watchdog loop alone, until SIGTERM
  codex-launch [flags] status [--json]           what the watchdog knows (never a token)
  codex-launch [flags] health                    for HEALTHCHECK: 0 usable and watched, 1 otherwise
  codex-launch --version | --help

A program called refresh, status or health runs as the child after "--".

Every flag can be set by its variable; a flag wins over its variable, an empty
variable counts as unset. Durations take Go syntax (30s, 5m, 6h) or whole
seconds. Booleans take true/false, 1/0, yes/no, on/off.

`

// writeHelp prints --help: the usage and every option with its variable and
// default, grouped by purpose, in aligned columns.
func writeHelp(w io.Writer, table []option) {
	fmt.Fprint(w, helpHead)
	fmt.Fprintln(w, "Exit codes (launcher / refresh --once):")
	for _, e := range exitCodes {
		fmt.Fprintf(w, "  %-7s %s\n", e.Code, e.Launcher)
		if e.RefreshOnce != "" {
			fmt.Fprintf(w, "  %-7s refresh --once: %s\n", "", e.RefreshOnce)
		}
	}
	flagWidth, envWidth := 0, 0
	for _, o := range table {
		flagWidth = max(flagWidth, len(flagColumn(o)))
		envWidth = max(envWidth, len(o.Env))
	}
	group := ""
	for _, o := range table {
		if o.Group != group {
			group = o.Group
			fmt.Fprintf(w, "\n%s options:\n", group)
		}
		fmt.Fprintf(w, "  %-*s  %-*s  default: %s\n", flagWidth, flagColumn(o), envWidth, o.Env, displayDefault(o))
		fmt.Fprintf(w, "      %s\n", o.Usage)
	}
}

func flagColumn(o option) string {
	if o.Flag == "" {
		return "(no flag)"
	}
	return "--" + o.Flag
}

func displayDefault(o option) string {
	if o.Default == "" {
		return "(none)"
	}
	return o.Default
}

// exitCode is one row of the exit-code table that --help prints and the
// README carries (between its exits markers).
type exitCode struct{ Code, Launcher, RefreshOnce string }

var exitCodes = []exitCode{
	{"0", "the child's 0 (or a code listed in --exit-zero)", "refreshed"},
	{"1-124", "the child's code", "1 nothing to do, 2 transient failure, 3 permanent failure"},
	{fmt.Sprint(exitLaunch), "codex-launch failed before the child ran: bad flag or variable, unknown user, unusable CODEX_HOME, invalid CODEX_AUTH_JSON, no usable credential with --require-auth", "usage error"},
	{fmt.Sprint(exitNoExec), "COMMAND exists but cannot be executed", ""},
	{fmt.Sprint(exitNotFound), "COMMAND not found", ""},
	{"128+N", "the child was killed by signal N (or stop signal N came before the child started)", "killed by TERM, INT or HUP before its POST (as PID 1: exit 2); after the POST they wait until the answer is written"},
}

// exitsMarkdown is the exit-code table in Markdown.
func exitsMarkdown() string {
	var b strings.Builder
	b.WriteString("| Code | Launcher | `refresh --once` |\n|---|---|---|\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", e.Code, e.Launcher, e.RefreshOnce)
	}
	return b.String()
}

// docSections are the generated parts of the README, each between its
// markers, each equal to what the binary prints (a test keeps them so).
var docSections = []struct {
	Begin, End string
	Generate   func() string
}{
	{"<!-- flags:begin -->", "<!-- flags:end -->", func() string { return flagsMarkdown(optionTable()) }},
	{"<!-- exits:begin -->", "<!-- exits:end -->", exitsMarkdown},
}

// flagsMarkdown is the table of options in Markdown, as kept between the
// markers in flagsDoc (go run ./cmd/codex-launch --help-markdown).
func flagsMarkdown(table []option) string {
	var b strings.Builder
	group := ""
	for _, o := range table {
		if o.Group != group {
			if group != "" {
				b.WriteString("\n")
			}
			group = o.Group
			fmt.Fprintf(&b, "**%s**\n\n", group)
			b.WriteString("| Flag | Variable | Default | Meaning |\n")
			b.WriteString("|------|----------|---------|---------|\n")
		}
		flagCol := "(none)"
		if o.Flag != "" {
			flagCol = "`--" + o.Flag + "`"
		}
		def := "(none)"
		if o.Default != "" {
			def = "`" + o.Default + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", flagCol, o.Env, def, strings.ReplaceAll(o.Usage, "|", `\|`))
	}
	return b.String()
}

// versionLine is --version: the release, the commit it was built from when
// the build recorded one, and the Go toolchain.
func versionLine() string {
	commit, dirty := "", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				commit = s.Value[:min(len(s.Value), 12)]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
	}
	if commit == "" {
		return fmt.Sprintf("codex-launch %s (%s)", version, runtime.Version())
	}
	return fmt.Sprintf("codex-launch %s (commit %s%s, %s)", version, commit, dirty, runtime.Version())
}
