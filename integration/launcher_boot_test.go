package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

func TestLauncherEnvDir(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	cred := l.Mock.IssueWithExpiry("acct-envdir", time.Now().Add(240*time.Hour))
	dir := filepath.Join(l.Dir, "secrets.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"CODEX_AUTH_JSON": string(testenv.AuthJSON(cred, time.Now())) + "\n",
		"GREETING":        "hello\nworld\n",
		"OPENAI_API_KEY":  "sk-" + tokenmock.Sentinel + "-apikey\n",
		"bad-name":        "secret-bad-name-value\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l.Args = []string{"--env-dir", dir}
	l.Child = []string{l.Script("child.sh", `cp "$CODEX_HOME/auth.json" "$OUT/first.json"
printf '%s' "$GREETING" > "$OUT/greeting"
[ -n "$OPENAI_API_KEY" ] && echo set > "$OUT/apikey"
if [ -z "${CODEX_AUTH_JSON+x}" ]; then echo absent > "$OUT/authvar"; else echo present > "$OUT/authvar"; fi
exit 0
`)}
	if code := l.Run(30 * time.Second); code != 0 {
		t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
	}
	if g := l.OutFile("greeting"); g != "hello\nworld" {
		t.Errorf("GREETING = %q, want the multi-line value minus one newline", g)
	}
	if l.OutFile("apikey") != "set\n" {
		t.Error("OPENAI_API_KEY from the env directory did not reach the child")
	}
	if v := l.OutFile("authvar"); v != "absent\n" {
		t.Errorf("CODEX_AUTH_JSON in the child's environment: %q, want it removed once materialised", v)
	}
	if !testenv.Holds([]byte(l.OutFile("first.json")), cred) {
		t.Error("auth.json was not seeded from the env directory")
	}
	out := l.Output.String()
	if !strings.Contains(out, "bad-name") {
		t.Errorf("no warning about the invalid name:\n%s", out)
	}
	if strings.Contains(out, "secret-bad-name-value") || strings.Contains(out, "hello") {
		t.Errorf("a value reached the log:\n%s", out)
	}
}

func TestLauncherSeedRules(t *testing.T) {
	type state struct {
		file []byte // nil: no auth.json
		env  []byte // CODEX_AUTH_JSON
	}
	now := time.Now()
	cases := []struct {
		name  string
		setup func(m *tokenmock.Server) (state, tokenmock.Credential) // the credential the child must see
		log   string                                                  // expected in the output
		warn  bool
	}{
		{"no file: written", func(m *tokenmock.Server) (state, tokenmock.Credential) {
			c := m.IssueWithExpiry("acct-a", now.Add(240*time.Hour))
			return state{env: testenv.AuthJSON(c, now)}, c
		}, "written", false},
		{"empty file: written", func(m *tokenmock.Server) (state, tokenmock.Credential) {
			c := m.IssueWithExpiry("acct-a", now.Add(240*time.Hour))
			return state{file: []byte{}, env: testenv.AuthJSON(c, now)}, c
		}, "written", false},
		{"unparseable file: written", func(m *tokenmock.Server) (state, tokenmock.Credential) {
			c := m.IssueWithExpiry("acct-a", now.Add(240*time.Hour))
			return state{file: []byte(`{"tok`), env: testenv.AuthJSON(c, now)}, c
		}, "written", false},
		{"rotated file fresher: kept", func(m *tokenmock.Server) (state, tokenmock.Credential) {
			spent := m.IssueWithExpiry("acct-a", now.Add(200*time.Hour))
			rotated := m.IssueWithExpiry("acct-a", now.Add(240*time.Hour))
			return state{file: testenv.AuthJSON(rotated, now), env: testenv.AuthJSON(spent, now.Add(-48*time.Hour))}, rotated
		}, "kept", false},
		{"variable fresher: replaced", func(m *tokenmock.Server) (state, tokenmock.Credential) {
			older := m.IssueWithExpiry("acct-a", now.Add(200*time.Hour))
			newer := m.IssueWithExpiry("acct-a", now.Add(240*time.Hour))
			return state{file: testenv.AuthJSON(older, now.Add(-48*time.Hour)), env: testenv.AuthJSON(newer, now)}, newer
		}, "replaced", false},
		{"another account: the variable wins", func(m *tokenmock.Server) (state, tokenmock.Credential) {
			other := m.IssueWithExpiry("acct-other", now.Add(240*time.Hour))
			mine := m.IssueWithExpiry("acct-a", now.Add(240*time.Hour))
			return state{file: testenv.AuthJSON(other, now), env: testenv.AuthJSON(mine, now.Add(-48*time.Hour))}, mine
		}, "another account", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLaunch(t, tokenmock.Options{})
			st, want := c.setup(l.Mock)
			if st.file != nil {
				l.WriteAuth(st.file)
			}
			l.Env["CODEX_AUTH_JSON"] = string(st.env)
			l.Env["CODEX_LAUNCH_LOG_LEVEL"] = "debug" // the seed's decision is a debug line
			l.Child = []string{l.Script("child.sh", firstLook)}
			if code := l.Run(30 * time.Second); code != 0 {
				t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
			}
			if !testenv.Holds([]byte(l.OutFile("first.json")), want) {
				t.Error("the child did not find the expected credential")
			}
			out := l.Output.String()
			if !strings.Contains(out, c.log) {
				t.Errorf("output does not say %q:\n%s", c.log, out)
			}
			if c.warn && !strings.Contains(out, "[WARN]") {
				t.Errorf("no warning:\n%s", out)
			}
			if n := l.Mock.Posts(); n != 0 {
				t.Errorf("%d POSTs for fresh credentials", n)
			}
			if st, err := os.Stat(filepath.Join(l.CodexHome, "auth.json")); err != nil {
				t.Error(err)
			} else if st.Mode().Perm() != 0o600 {
				t.Errorf("auth.json mode %v, want 0600", st.Mode().Perm())
			}
		})
	}
}

func TestLauncherSeedInvalidVariable(t *testing.T) {
	l := newLaunch(t, tokenmock.Options{})
	good := l.Mock.IssueWithExpiry("acct-a", time.Now().Add(240*time.Hour))
	before := testenv.AuthJSON(good, time.Now())
	l.WriteAuth(before)
	l.Env["CODEX_AUTH_JSON"] = `{"auth_mode":"chatgpt","tokens":{"access_token":"` + tokenmock.Sentinel + `-truncated`
	l.Child = []string{l.Script("child.sh", `echo started > "$OUT/started"`)}
	if code := l.Run(20 * time.Second); code != 125 {
		t.Errorf("exit %d, want 125; output:\n%s", code, l.Output.String())
	}
	if !bytes.Equal(l.ReadAuth(), before) {
		t.Error("auth.json changed")
	}
	if l.OutFile("started") != "" {
		t.Error("the child ran")
	}
	out := l.Output.String()
	if !strings.Contains(out, "CODEX_AUTH_JSON") || !strings.Contains(out, "not a valid credential") {
		t.Errorf("the error does not say which variable is wrong:\n%s", out)
	}
	if strings.Contains(out, tokenmock.Sentinel) {
		t.Errorf("the value reached the output:\n%s", out)
	}
}

func TestLauncherConfigToml(t *testing.T) {
	const key = `cli_auth_credentials_store = "file"`
	cases := []struct {
		name, in string
		added    bool
	}{
		{"missing key, trailing table swallows start.sh's line", "model = \"o3\"\n\n[profiles.fast]\nmodel = \"o4-mini\"\n" + key + "\n", true},
		{"already at top level", key + "\n[t]\na = 1\n", false},
		{"keyring is left, with a warning", "cli_auth_credentials_store = \"keyring\"\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLaunch(t, tokenmock.Options{})
			if err := os.MkdirAll(l.CodexHome, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(l.CodexHome, "config.toml")
			if err := os.WriteFile(path, []byte(c.in), 0o600); err != nil {
				t.Fatal(err)
			}
			l.Child = []string{"true"}
			if code := l.Run(20 * time.Second); code != 0 {
				t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
			}
			got, _ := os.ReadFile(path)
			if !c.added {
				if string(got) != c.in {
					t.Errorf("config.toml changed:\n%s", got)
				}
			} else {
				head, rest, _ := bytes.Cut(got, []byte(key+"\n"))
				if string(rest) != c.in || bytes.Contains(head, []byte("[")) {
					t.Errorf("config.toml = %q, want the key at the top and the rest byte-identical", got)
				}
			}
			if strings.Contains(c.in, "keyring") && !strings.Contains(l.Output.String(), "[WARN]") {
				t.Errorf("no warning for the keyring store:\n%s", l.Output.String())
			}
		})
	}
	// No config.toml at all: one is created.
	l := newLaunch(t, tokenmock.Options{})
	l.Child = []string{"true"}
	if code := l.Run(20 * time.Second); code != 0 {
		t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
	}
	got, _ := os.ReadFile(filepath.Join(l.CodexHome, "config.toml"))
	if !bytes.Contains(got, []byte(key)) {
		t.Errorf("created config.toml = %q", got)
	}
}

// TestLauncherSeedAlias: CODEX_CHATGPT_AUTH_JSON works alone, loses to
// CODEX_AUTH_JSON, and leaves the child's environment like it.
func TestLauncherSeedAlias(t *testing.T) {
	for _, both := range []bool{false, true} {
		l := newLaunch(t, tokenmock.Options{})
		alias := l.Mock.IssueWithExpiry("acct-alias", time.Now().Add(240*time.Hour))
		main := l.Mock.IssueWithExpiry("acct-main", time.Now().Add(240*time.Hour))
		l.Env["CODEX_CHATGPT_AUTH_JSON"] = string(testenv.AuthJSON(alias, time.Now()))
		want := alias
		if both {
			l.Env["CODEX_AUTH_JSON"] = string(testenv.AuthJSON(main, time.Now()))
			want = main
		}
		l.Child = []string{l.Script("child.sh", `cp "$CODEX_HOME/auth.json" "$OUT/first.json"
if env | grep -q -e '^CODEX_AUTH_JSON=' -e '^CODEX_CHATGPT_AUTH_JSON='; then echo present > "$OUT/authvar"; fi
exit 0
`)}
		if code := l.Run(30 * time.Second); code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, l.Output.String())
		}
		if !testenv.Holds([]byte(l.OutFile("first.json")), want) {
			t.Errorf("both=%v: auth.json does not hold the winning variable's credential", both)
		}
		if l.OutFile("authvar") != "" {
			t.Errorf("both=%v: a credential variable reached the child", both)
		}
	}
}
