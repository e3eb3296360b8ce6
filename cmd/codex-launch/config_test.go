package main

import (
	"bytes"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/boot"
	"github.com/molecule-ai/codex-launch/signals"
)

// runCaptured runs the program in-process with env as its whole environment.
// The launcher is replaced by a recorder so nothing is started.
func runCaptured(t *testing.T, env map[string]string, args ...string) (code int, cfg *Config, argv []string, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	p := &program{stdout: &out, stderr: &errb, table: optionTable()}
	for k, v := range env {
		p.environ = append(p.environ, k+"="+v)
	}
	p.launch = func(c *Config, _ []string, _ hclog.Logger, a []string) int {
		cfg, argv = c, a
		return 0
	}
	code = p.run(args)
	return code, cfg, argv, out.String(), errb.String()
}

func TestDefaults(t *testing.T) {
	code, cfg, argv, _, stderr := runCaptured(t, nil, "--", "true", "-x")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !reflect.DeepEqual(argv, []string{"true", "-x"}) {
		t.Errorf("argv %q", argv)
	}
	want := &Config{
		CodexHome:      "",
		Interval:       6 * time.Hour,
		SafetyMargin:   4 * time.Hour,
		StaleAfter:     7 * 24 * time.Hour,
		TokenURL:       "https://auth.openai.com/oauth/token",
		ClientID:       "app_EMoamEEZ73f0CkXaXp7hrann",
		RefreshOwner:   true,
		RefreshTimeout: 30 * time.Second,
		LockTimeout:    10 * time.Second,
		MinBackoff:     10 * time.Second,
		MaxBackoff:     10 * time.Minute,
		RecheckWindow:  3 * time.Second,
		PollInterval:   5 * time.Second,
		PrimeTimeout:   45 * time.Second,
		StopTimeout:    8 * time.Second,
		StopSignals:    []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT},
		Rewrite:        signals.Rewrite{},
		LogLevel:       hclog.Info,
		LogFormat:      "text",
	}
	want.Fleet = cfg.Fleet // owned by the fleet area, tested there
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if got := cfg.ResolvedCodexHome("/home/agent"); got != "/home/agent/.codex" {
		t.Errorf("default CODEX_HOME = %q", got)
	}
}

func TestSeedVariablesTakeSeconds(t *testing.T) {
	env := map[string]string{
		"CODEX_AUTH_REFRESH_INTERVAL_SECONDS": "60",
		"CODEX_AUTH_SAFETY_MARGIN_SECONDS":    "0",
		"CODEX_AUTH_STALE_AFTER_SECONDS":      "604800",
		"CODEX_AUTH_REFRESH_OWNER":            "0",
		"CODEX_REFRESH_TOKEN_URL_OVERRIDE":    "http://127.0.0.1:8080/oauth/token",
		"CODEX_APP_SERVER_LOGIN_CLIENT_ID":    "app_test",
		"CODEX_HOME":                          "/tmp/ch",
	}
	code, cfg, _, _, stderr := runCaptured(t, env, "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if cfg.Interval != time.Minute || cfg.SafetyMargin != 0 || cfg.StaleAfter != 7*24*time.Hour {
		t.Errorf("durations: %v %v %v", cfg.Interval, cfg.SafetyMargin, cfg.StaleAfter)
	}
	if cfg.RefreshOwner || cfg.TokenURL != env["CODEX_REFRESH_TOKEN_URL_OVERRIDE"] || cfg.ClientID != "app_test" {
		t.Errorf("owner %v url %q client %q", cfg.RefreshOwner, cfg.TokenURL, cfg.ClientID)
	}
	if cfg.ResolvedCodexHome("/home/x") != "/tmp/ch" {
		t.Errorf("CODEX_HOME: %q", cfg.CodexHome)
	}
}

func TestFlagWinsOverVariable(t *testing.T) {
	env := map[string]string{
		"CODEX_LAUNCH_STOP_TIMEOUT": "3s",
		"CODEX_LAUNCH_LOG_FORMAT":   "json",
		"CODEX_AUTH_REFRESH_OWNER":  "0",
		"CODEX_LAUNCH_REQUIRE_AUTH": "true",
	}
	code, cfg, _, _, stderr := runCaptured(t, env, "--stop-timeout=5s", "--log-format", "text",
		"--refresh-owner", "--require-auth=false", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if cfg.StopTimeout != 5*time.Second || cfg.LogFormat != "text" || !cfg.RefreshOwner || cfg.RequireAuth {
		t.Errorf("flags did not win: %+v", cfg)
	}
	// Without the flags, the variables apply.
	_, cfg, _, _, _ = runCaptured(t, env, "true")
	if cfg.StopTimeout != 3*time.Second || cfg.LogFormat != "json" || cfg.RefreshOwner || !cfg.RequireAuth {
		t.Errorf("variables ignored: %+v", cfg)
	}
}

func TestEmptyVariableIsUnset(t *testing.T) {
	_, cfg, _, _, stderr := runCaptured(t, map[string]string{"CODEX_LAUNCH_STOP_TIMEOUT": ""}, "true")
	if cfg == nil || cfg.StopTimeout != 8*time.Second {
		t.Fatalf("empty variable should give the default: %v %s", cfg, stderr)
	}
}

func TestProcessOptionsParse(t *testing.T) {
	code, cfg, _, _, stderr := runCaptured(t, nil, "--stop-signals", "SIGTERM, hup ,2", "--rewrite", "TERM:INT,USR1:0",
		"--exit-zero", "143,0", "--pdeathsig", "KILL", "--signal-group", "--", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !reflect.DeepEqual(cfg.StopSignals, []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT}) {
		t.Errorf("stop signals %v", cfg.StopSignals)
	}
	if !reflect.DeepEqual(cfg.Rewrite, signals.Rewrite{syscall.SIGTERM: syscall.SIGINT, syscall.SIGUSR1: 0}) {
		t.Errorf("rewrite %v", cfg.Rewrite)
	}
	if !reflect.DeepEqual(cfg.ExitZero, []int{143, 0}) || cfg.PDeathSig != syscall.SIGKILL || !cfg.SignalGroup {
		t.Errorf("exit-zero %v pdeathsig %v group %v", cfg.ExitZero, cfg.PDeathSig, cfg.SignalGroup)
	}
}

// badValues holds, for every option this file's areas own, a value it must
// refuse.
var badValues = map[string]string{
	"codex-home":       "   ",
	"refresh-interval": "abc",
	"safety-margin":    "-1",
	"stale-after":      "0",
	"token-url":        "http://example.com/oauth/token",
	"client-id":        "two words",
	"refresh-owner":    "maybe",
	"refresh-timeout":  "1 minute",
	"lock-timeout":     "-2s",
	"min-backoff":      "0",
	"max-backoff":      "ten",
	"recheck-window":   "-1s",
	"poll-interval":    "0s",
	"user":             "agent:",
	"prime-timeout":    "0s",
	"require-auth":     "2",
	"stop-timeout":     "abc",
	"stop-signals":     "TERM,NOPE",
	"signal-group":     "group",
	"rewrite":          "TERM",
	"exit-zero":        "256",
	"pdeathsig":        "SIGFOO",
	"log-level":        "loud",
	"log-format":       "xml",
	// The fleet area's options (fleet_options.go).
	"credential-store":         "ftp://store.example",
	"fleet-fallback-refresh":   "sometimes",
	"fleet-poll-interval":      "soon",
	"credential-store-mode":    "bouncy",
	"fleet-fast-poll-interval": "0",
	"credential-sync-interval": "-5",
}

func TestBadValueNamesFlagAndVariable(t *testing.T) {
	byFlag := map[string]option{}
	for _, o := range optionTable() {
		byFlag[o.Flag] = o
	}
	for flagName, bad := range badValues {
		o, ok := byFlag[flagName]
		if !ok {
			t.Errorf("badValues names --%s, which is not in the table", flagName)
			continue
		}
		wantName := "--" + o.Flag + " (" + o.Env + ")"
		// As a flag.
		code, _, argv, _, stderr := runCaptured(t, nil, "--"+flagName+"="+bad, "--", "true")
		if code != exitLaunch || argv != nil {
			t.Errorf("--%s=%q: exit %d, launched %v; want 125 before anything", flagName, bad, code, argv)
		}
		if !strings.Contains(stderr, wantName) || !strings.Contains(stderr, "invalid value") {
			t.Errorf("--%s=%q: message does not name %s: %s", flagName, bad, wantName, stderr)
		}
		// As a variable.
		code, _, argv, _, stderr = runCaptured(t, map[string]string{o.Env: bad}, "true")
		if code != exitLaunch || argv != nil {
			t.Errorf("%s=%q: exit %d, launched %v; want 125", o.Env, bad, code, argv)
		}
		if !strings.Contains(stderr, wantName) {
			t.Errorf("%s=%q: message does not name %s: %s", o.Env, bad, wantName, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                          // no command
		{"--no-such-flag", "true"},  // unknown flag
		{"--stop-timeout"},          // missing value
		{"status", "extra"},         // stray argument
		{"refresh", "--once=maybe"}, // bad subcommand flag
	} {
		code, _, argv, _, stderr := runCaptured(t, nil, args...)
		if code != exitLaunch || argv != nil {
			t.Errorf("%q: exit %d argv %v, want 125", args, code, argv)
		}
		if !strings.HasPrefix(stderr, "codex-launch: ") {
			t.Errorf("%q: message %q", args, stderr)
		}
	}
}

func TestSubcommandNameAfterDashesIsTheChild(t *testing.T) {
	code, _, argv, _, _ := runCaptured(t, nil, "--", "status", "--json")
	if code != 0 || !reflect.DeepEqual(argv, []string{"status", "--json"}) {
		t.Errorf("exit %d argv %q: a program called status must run as the child after --", code, argv)
	}
}

func TestHelpListsEveryOption(t *testing.T) {
	code, _, _, stdout, _ := runCaptured(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, o := range optionTable() {
		if o.Flag != "" && !strings.Contains(stdout, "--"+o.Flag+" ") {
			t.Errorf("--help lacks --%s", o.Flag)
		}
		if !strings.Contains(stdout, o.Env) || !strings.Contains(stdout, "default: "+displayDefault(o)) {
			t.Errorf("--help lacks %s or its default", o.Env)
		}
	}
}

func TestVersion(t *testing.T) {
	code, _, _, stdout, _ := runCaptured(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(stdout, "codex-launch "+version+" (") || !strings.Contains(stdout, runtime.Version()) {
		t.Errorf("--version: exit %d %q", code, stdout)
	}
}

// Every option has a variable and a usage line; flags and variables are
// unique; every default parses (the default path of resolve is exercised by
// TestDefaults, this names the offender).
func TestTableIsWellFormed(t *testing.T) {
	flags, envs := map[string]bool{}, map[string]bool{}
	for _, o := range optionTable() {
		if o.Env == "" || o.Usage == "" {
			t.Errorf("option %+v lacks a variable or usage", o)
		}
		if envs[o.Env] || (o.Flag != "" && flags[o.Flag]) {
			t.Errorf("duplicate %s / --%s", o.Env, o.Flag)
		}
		envs[o.Env], flags[o.Flag] = true, true
		if o.Flag != "" && !strings.HasPrefix(o.Env, "CODEX_") {
			t.Errorf("%s: variables start with CODEX_", o.Env)
		}
		if o.Set != nil {
			def := o.Default
			if o.DefaultFunc != nil {
				def = o.DefaultFunc(func(string) string { return "" })
			}
			if err := o.Set(&Config{}, def); err != nil {
				t.Errorf("default %q of %s does not parse: %v", def, o.name(), err)
			}
		}
		if o.Set == nil && o.Flag != "" {
			t.Errorf("--%s has no parser", o.Flag)
		}
	}
}

// A secret's value (a database URL with its password) is never quoted back.
func TestSecretValueNotQuoted(t *testing.T) {
	const pw = "s3cretPASSWORD"
	for _, args := range [][]string{
		{"--credential-store", "ftp://user:" + pw + "@db.example/x", "--", "true"},
	} {
		code, _, _, _, stderr := runCaptured(t, nil, args...)
		if code != exitLaunch {
			t.Fatalf("%q: exit %d", args, code)
		}
		if strings.Contains(stderr, pw) || !strings.Contains(stderr, "value hidden") {
			t.Errorf("a secret option's value was echoed: %s", stderr)
		}
	}
	code, _, _, _, stderr := runCaptured(t, map[string]string{"CODEX_LAUNCH_CREDENTIAL_STORE": "ftp://u:" + pw + "@h/x"}, "true")
	if code != exitLaunch || strings.Contains(stderr, pw) {
		t.Errorf("exit %d, message %s", code, stderr)
	}
}

// The child never gets a secret option's variable: the credential variables
// and the fleet's store URL and keys are all marked Secret.
func TestSecretVariables(t *testing.T) {
	got := map[string]bool{}
	for _, n := range secretVariables(optionTable()) {
		got[n] = true
	}
	// Boot's credential variables are rows of the table, as secrets.
	for _, want := range append(boot.AuthVariables(), "CODEX_LAUNCH_CREDENTIAL_STORE", "CODEX_LAUNCH_CREDENTIAL_KEYS") {
		if !got[want] {
			t.Errorf("%s is not marked secret", want)
		}
	}
}

// A URL option's user information and query are not quoted back even when
// the option is not secret (either may carry a secret): the error shows the
// URL without them.
func TestURLPasswordNotQuoted(t *testing.T) {
	for _, bad := range []string{"https://user:pw-s3cret@auth.example/oauth/token", "http://auth.example/oauth/token?key=pw-s3cret"} {
		code, _, _, _, stderr := runCaptured(t, nil, "--token-url", bad, "refresh", "--once")
		if code != exitLaunch || strings.Contains(stderr, "pw-s3cret") || !strings.Contains(stderr, "--token-url") {
			t.Fatalf("%s: exit %d: %s", bad, code, stderr)
		}
	}
}

// An image's ENTRYPOINT ends in "--": a launcher flag given as the container's
// command is refused with what to do instead, not run as a program.
func TestFlagAfterDashesIsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--", "--log-level", "debug", "codex"},
		{"--", "--stop-timeout=3s", "codex"},
		{"--", "-user", "agent", "codex"},
	} {
		code, _, argv, _, stderr := runCaptured(t, nil, args...)
		if code != exitLaunch || argv != nil {
			t.Errorf("%q: exit %d, launched %q; want 125 and nothing launched", args, code, argv)
		}
		if !strings.Contains(stderr, "CODEX_LAUNCH_") || !strings.Contains(stderr, "--entrypoint codex-launch") {
			t.Errorf("%q: the error does not say what to do instead: %s", args, stderr)
		}
	}
	// A command that merely starts with "-" but is no flag of ours still runs.
	if code, _, argv, _, _ := runCaptured(t, nil, "--", "-not-a-flag"); code != 0 || len(argv) != 1 {
		t.Errorf("-not-a-flag: exit %d argv %q", code, argv)
	}
}
