package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

func TestLogContextNamesOnly(t *testing.T) {
	var logs bytes.Buffer
	env := []string{
		"OPENAI_API_KEY=sk-" + tokenmock.Sentinel, "CODEX_AUTH_JSON={\"" + tokenmock.Sentinel + "\":1}",
		"KIMI_API_KEY=", "WORKSPACE_ID=ws-42", "PLATFORM_URL=https://platform.example",
	}
	LogContext(testLogger(&logs), &User{Name: "agent", UID: 1000, GID: 1000}, []string{"molecule-runtime", "--serve"}, env)
	out := logs.String()
	if strings.Contains(out, tokenmock.Sentinel) {
		t.Fatalf("a value leaked:\n%s", out)
	}
	for _, want := range []string{
		`credentials_set=["OPENAI_API_KEY", "CODEX_AUTH_JSON"]`, "WORKSPACE_ID=ws-42", "PLATFORM_URL=https://platform.example",
		"user=agent", "user_uid=1000", "molecule-runtime", "uid=", "gid=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("boot line lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `credentials_unset=["MINIMAX_API_KEY", "KIMI_API_KEY", "CODEX_CHATGPT_AUTH_JSON", "MOLECULE_ORG_ID"]`) {
		t.Errorf("an empty variable must count as unset:\n%s", out)
	}
}

// A URL in the boot line loses its user information, query and fragment,
// which may carry a token.
func TestLogContextRedactsURLs(t *testing.T) {
	var logs bytes.Buffer
	env := []string{"PLATFORM_URL=https://svc:" + tokenmock.Sentinel + "@platform.example/x?k=" + tokenmock.Sentinel + "#" + tokenmock.Sentinel}
	LogContext(testLogger(&logs), nil, []string{"true"}, env)
	out := logs.String()
	if strings.Contains(out, tokenmock.Sentinel) || !strings.Contains(out, "PLATFORM_URL=https://platform.example/x") {
		t.Fatalf("boot line:\n%s", out)
	}
}

// TestLogContextHidesASplitURL: a password holding a "/" ends the host part
// early, and the parse leaves it in the port and path; such a URL is not
// shown at all.
func TestLogContextHidesASplitURL(t *testing.T) {
	var logs bytes.Buffer
	env := []string{"PLATFORM_URL=https://svc:8/" + tokenmock.Sentinel + "@platform.example/x"}
	LogContext(testLogger(&logs), nil, []string{"true"}, env)
	out := logs.String()
	if strings.Contains(out, tokenmock.Sentinel) || !strings.Contains(out, "PLATFORM_URL=") {
		t.Fatalf("boot line:\n%s", out)
	}
}

func TestRun(t *testing.T) {
	mock := tokenmock.Start(tokenmock.Options{})
	defer mock.Close()
	root := t.TempDir()
	envDir := filepath.Join(root, "secrets.d")
	if err := os.Mkdir(envDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cred := mock.Issue("acct-1")
	authJSON := tokenmock.FormatAuthJSON(cred, time.Now(), tokenmock.FileOptions{})
	if err := os.WriteFile(filepath.Join(envDir, "CODEX_AUTH_JSON"), append(authJSON, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "EXTRA"), []byte("from-dir\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(root, "home", ".codex")
	var logs bytes.Buffer
	vars, err := LoadEnvDir(envDir, testLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runBoot(context.Background(), Config{
		CodexHome: home, Environ: MergeEnv([]string{"EXTRA=from-env", "KEEP=1", "HOME=" + root}, vars),
		Command: []string{"child"}, Logger: testLogger(&logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.CodexHome != home || res.Seed.Action != SeedWritten || res.Store != StoreCreated {
		t.Errorf("result: codex_home %s, seed %s, store %s", res.CodexHome, res.Seed.Action, res.Store)
	}
	env := strings.Join(res.Env, "\n")
	for _, want := range []string{"EXTRA=from-dir", "KEEP=1", "CODEX_HOME=" + home} {
		if !strings.Contains(env, want) {
			t.Errorf("child env lacks %q", want)
		}
	}
	if strings.Contains(env, "CODEX_AUTH_JSON") || strings.Contains(env, tokenmock.Sentinel) {
		t.Error("the credential variable is still in the child's environment")
	}
	if leaks := mock.Leaks(logs.Bytes()); len(leaks) > 0 {
		t.Errorf("log leaks %v", leaks)
	}
	data, _ := os.ReadFile(filepath.Join(home, "auth.json"))
	if !bytes.Contains(data, []byte(cred.RefreshToken)) {
		t.Error("auth.json not seeded")
	}
	for _, p := range []string{"sessions", "config.toml"} {
		if _, err := os.Stat(filepath.Join(home, p)); err != nil {
			t.Error(err)
		}
	}

	// Default CODEX_HOME: $HOME/.codex when no user is given.
	if err := os.Mkdir(filepath.Join(root, "h2"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = runBoot(context.Background(), Config{Environ: []string{"HOME=" + filepath.Join(root, "h2")}})
	if err != nil || res.CodexHome != filepath.Join(root, "h2", ".codex") {
		t.Errorf("default CODEX_HOME: %v %v", res, err)
	}
}

// runBoot resolves the target and boots, as the launcher does.
func runBoot(ctx context.Context, cfg Config) (*Result, error) {
	target, err := ResolveTarget(cfg)
	if err != nil {
		return nil, err
	}
	return Run(ctx, cfg, target)
}

// A default CODEX_HOME under a home that does not exist, or under /, is
// refused before anything is created.
func TestResolveTargetRefusesAMissingHome(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "nonexistent")
	for _, home := range []string{missing, "/", ""} {
		_, err := ResolveTarget(Config{Environ: []string{"HOME=" + home}})
		var be *Error
		if home == "" {
			if err != nil { // "" falls back to the process's own home
				t.Errorf("HOME empty: %v", err)
			}
			continue
		}
		if !errors.As(err, &be) || be.Step != "codex-home" || !strings.Contains(err.Error(), "set CODEX_HOME") {
			t.Errorf("HOME=%s: err = %v, want a codex-home error that says to set CODEX_HOME", home, err)
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created: %v", missing, err)
	}
	// Given explicitly, a CODEX_HOME that does not exist yet is boot's to make.
	if tg, err := ResolveTarget(Config{CodexHome: filepath.Join(missing, ".codex")}); err != nil || tg.CodexHome != filepath.Join(missing, ".codex") {
		t.Errorf("explicit CODEX_HOME: %+v %v", tg, err)
	}
}

func TestRunErrors(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		cfg  Config
		step string
	}{
		{Config{User: "no-such-user-here", CodexHome: root}, "user"},
		{Config{CodexHome: root, Environ: []string{"CODEX_AUTH_JSON=not json"}}, "seed"},
	}
	for _, c := range cases {
		_, err := runBoot(context.Background(), c.cfg)
		var be *Error
		if !errors.As(err, &be) || be.Step != c.step {
			t.Errorf("%+v: err = %v, want a boot error at step %s", c.cfg, err, c.step)
		}
	}
	// A boot cancelled before it starts writes nothing, not even the
	// credential it was given.
	mock := tokenmock.Start(tokenmock.Options{})
	defer mock.Close()
	authJSON := tokenmock.FormatAuthJSON(mock.Issue("acct-1"), time.Now(), tokenmock.FileOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := Config{CodexHome: filepath.Join(root, "x"), Environ: []string{"CODEX_AUTH_JSON=" + string(authJSON)}}
	if _, err := runBoot(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "x", "auth.json")); err == nil {
		t.Error("a cancelled boot wrote auth.json")
	}
}

func TestRunUnwritableConfig(t *testing.T) {
	home := t.TempDir()
	// A directory where config.toml should be: it can be neither read nor
	// replaced, as with a broken mount.
	path := filepath.Join(home, "config.toml")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := runBoot(context.Background(), Config{CodexHome: home, Logger: testLogger(&logs)}); err != nil {
		t.Fatalf("an unusable config.toml stopped the boot: %v", err)
	}
	if !strings.Contains(logs.String(), "config.toml") || !strings.Contains(logs.String(), "[WARN]") {
		t.Errorf("no warning:\n%s", logs.String())
	}
}
