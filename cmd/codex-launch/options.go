package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// option is one row of the configuration table. The same row drives flag
// parsing, the environment lookup, validation, --help and the README table, so
// the four cannot drift apart.
type option struct {
	// Flag is the long flag name without dashes; empty for a variable that
	// has no flag (a secret that must not travel in argv).
	Flag string
	// Env is the environment variable read when the flag is not given.
	Env string
	// Default is the value used when neither is set, as shown in --help. It
	// is parsed by Set like any other value, so a bad default fails tests.
	Default string
	// Usage says what the option is for, in one line.
	Usage string
	// Group is the purpose the option serves, a heading in --help.
	Group string
	// Bool options may be given as a bare --flag (meaning true).
	Bool bool
	// Secret values are never quoted back in an error message.
	Secret bool
	// FlagCheck, when set, refuses a value given as the flag that must not
	// travel in argv (readable by other processes in /proc/PID/cmdline);
	// the same value from the variable stays allowed.
	FlagCheck func(raw string) error
	// Set parses raw and stores it in cfg; nil for variables read elsewhere
	// (boot reads CODEX_AUTH_JSON itself).
	Set func(cfg *Config, raw string) error
	// DefaultFunc computes the effective default at run time when it depends
	// on the environment (CODEX_HOME's $HOME/.codex); Default is its display.
	DefaultFunc func(getenv func(string) string) string
}

// optionTable is the whole configuration, contributed area by area so that
// each area's owner edits only their function, in the order --help shows.
func optionTable() []option {
	var t []option
	for _, area := range []struct {
		group   string
		options []option
	}{
		{"PID 1", processOptions()},
		{"Credential", credentialOptions()},
		{"Boot", bootOptions()},
		{"Fleet", fleetOptions()},
		{"Logging", logOptions()},
	} {
		for _, o := range area.options {
			o.Group = area.group
			t = append(t, o)
		}
	}
	return t
}

// UsageError is a configuration mistake: codex-launch stops with exit 125
// before doing anything.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// rawValue collects a flag's text; parsing happens afterwards, in table order,
// so that every error names both the flag and its variable.
type rawValue struct {
	opt  *option
	vals map[string]string
}

func (v *rawValue) String() string { return "" }
func (v *rawValue) Set(s string) error {
	v.vals[v.opt.Flag] = s
	return nil
}
func (v *rawValue) IsBoolFlag() bool { return v.opt.Bool }

// parser binds the table to a flag set. Subcommands add their own flags to fs
// before calling parse.
type parser struct {
	table []option
	fs    *flag.FlagSet
	given map[string]string
}

// newParser binds table to a new flag set. Flag values are collected into
// given, which a subcommand's parser shares with the global one so that a
// flag may come before or after the subcommand's name.
func newParser(name string, table []option, given map[string]string) *parser {
	p := &parser{table: table, fs: flag.NewFlagSet(name, flag.ContinueOnError), given: given}
	p.fs.SetOutput(io.Discard)
	p.fs.Usage = func() {}
	for i := range p.table {
		o := &p.table[i]
		if o.Flag == "" {
			continue
		}
		p.fs.Var(&rawValue{opt: o, vals: p.given}, o.Flag, o.Usage)
	}
	return p
}

// parseFlags reads args (flags stop at the first non-flag or "--") into the
// parser's given map and returns the remaining arguments. It resolves
// nothing: the configuration is resolved once, by resolve, when every source
// is known.
func (p *parser) parseFlags(args []string) ([]string, error) {
	if err := p.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageErrorf("%v (see codex-launch --help)", err)
	}
	return p.fs.Args(), nil
}

// resolve applies the table to cfg. Flags win over variables; an empty
// variable counts as unset, as a shell's ${VAR:-default} does.
func resolve(cfg *Config, table []option, given map[string]string, getenv func(string) string) error {
	for _, o := range table {
		if o.Set == nil {
			continue
		}
		raw, source := valueOf(o, given, getenv)
		if source == "the flag" && o.FlagCheck != nil {
			if err := o.FlagCheck(raw); err != nil {
				return usageErrorf("%v", err)
			}
		}
		if err := o.Set(cfg, raw); err != nil {
			// A URL's user information or query may hold a secret.
			shown := strconv.Quote(secreturl.Shown(raw))
			if o.Secret {
				shown = "(value hidden)"
			}
			return usageErrorf("invalid value %s for %s: %v (from %s)", shown, o.name(), err, source)
		}
	}
	return nil
}

// valueOf is the one precedence rule: the flag as typed, else a non-empty
// variable, else the default. source names where the value came from.
func valueOf(o option, given map[string]string, getenv func(string) string) (raw, source string) {
	if v, ok := given[o.Flag]; ok && o.Flag != "" {
		return v, "the flag"
	}
	if v := getenv(o.Env); v != "" {
		return v, "the environment"
	}
	if o.DefaultFunc != nil {
		return o.DefaultFunc(getenv), "the default"
	}
	return o.Default, "the default"
}

// optionByFlag is the table's option with the given flag name.
func optionByFlag(table []option, flag string) option {
	for _, o := range table {
		if o.Flag == flag {
			return o
		}
	}
	panic("codex-launch: no option --" + flag)
}

// name is how an error names the option: flag and variable together.
func (o option) name() string {
	if o.Flag == "" {
		return o.Env
	}
	return fmt.Sprintf("--%s (%s)", o.Flag, o.Env)
}

// Value parsers shared by the areas.

// parseDuration accepts a Go duration ("90s", "6h") or whole seconds ("21600",
// the *_SECONDS variables' form). Negative values are refused.
func parseDuration(raw string) (time.Duration, error) {
	s := strings.TrimSpace(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, errors.New("must not be negative")
		}
		if n > int64((1<<63-1)/int64(time.Second)) {
			return 0, errors.New("too large")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 30s, 5m, 6h, or whole seconds")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// setDuration parses raw into *dst; zero is refused unless allowZero.
func setDuration(dst *time.Duration, raw string, allowZero bool) error {
	d, err := parseDuration(raw)
	if err != nil {
		return err
	}
	if d == 0 && !allowZero {
		return errors.New("must be greater than zero")
	}
	*dst = d
	return nil
}

// parseBool accepts what people write in environment files.
func parseBool(raw string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("want true or false (1/0, yes/no, on/off)")
}

// setBool parses raw into *dst.
func setBool(dst *bool, raw string) error {
	b, err := parseBool(raw)
	if err != nil {
		return err
	}
	*dst = b
	return nil
}

// splitList splits a comma-separated list, dropping empty items and spaces.
func splitList(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
