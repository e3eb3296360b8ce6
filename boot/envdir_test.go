package boot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func testLogger(buf *bytes.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Trace})
}

func TestLoadEnvDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("PLAIN", "value-plain\n")
	write("TWO_NEWLINES", "value-two\n\n")
	write("MULTI", "{\n  \"a\": 1\n}\n")
	write("NO_NEWLINE", "bare")
	write("EMPTY", "")
	write("bad-name", "secret-bad-name\n")
	write("1DIGIT", "secret-digit\n")
	write("NUL", "a\x00b")
	write(".hidden", "secret-hidden")
	if err := os.Mkdir(filepath.Join(dir, "SUBDIR"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Kubernetes style: a link to a file in a hidden directory.
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("..data/LINKED", "value-linked\n")
	if err := os.Symlink("..data/LINKED", filepath.Join(dir, "LINKED")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(dir, "DANGLING")); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	vars, err := LoadEnvDir(dir, testLogger(&logs))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vars {
		got[v.Name] = v.Value
	}
	want := map[string]string{
		"PLAIN":        "value-plain",
		"TWO_NEWLINES": "value-two\n",
		"MULTI":        "{\n  \"a\": 1\n}",
		"NO_NEWLINE":   "bare",
		"EMPTY":        "",
		"LINKED":       "value-linked",
	}
	if len(got) != len(want) {
		t.Errorf("got variables %v, want %v", keys(got), keys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	out := logs.String()
	for _, s := range []string{"value-", "secret-", "bare"} {
		if strings.Contains(out, s) {
			t.Errorf("log holds a value (%q):\n%s", s, out)
		}
	}
	for _, s := range []string{"bad-name", "1DIGIT", "NUL", "DANGLING"} {
		if !strings.Contains(out, s) {
			t.Errorf("log does not warn about %s:\n%s", s, out)
		}
	}
}

func TestLoadEnvDirErrors(t *testing.T) {
	if _, err := LoadEnvDir(filepath.Join(t.TempDir(), "nope"), nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing directory: err = %v, want an error naming it", err)
	}
	if os.Geteuid() == 0 {
		return // root reads a 0000 file
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "LOCKED")
	if err := os.WriteFile(p, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEnvDir(dir, nil); err == nil || !strings.Contains(err.Error(), "LOCKED") {
		t.Fatalf("unreadable file: err = %v, want an error naming the variable", err)
	}
}

func TestValidEnvName(t *testing.T) {
	for name, ok := range map[string]bool{
		"A": true, "_": true, "a_b9": true, "CODEX_AUTH_JSON": true,
		"": false, "9A": false, "A-B": false, "A.B": false, "A B": false, "É": false,
	} {
		if ValidEnvName(name) != ok {
			t.Errorf("ValidEnvName(%q) = %v, want %v", name, !ok, ok)
		}
	}
}

func TestEnvHelpers(t *testing.T) {
	env := []string{"A=1", "B=2", "A=3", "C"}
	if v, ok := LookupEnv(env, "A"); !ok || v != "3" {
		t.Errorf("LookupEnv A = %q %v, want the last definition", v, ok)
	}
	got := MergeEnv(env, []EnvVar{{"A", "x"}, {"D", "y\nz"}})
	if strings.Join(got, ";") != "B=2;C;A=x;D=y\nz" {
		t.Errorf("MergeEnv = %q", got)
	}
	if got := UnsetEnv(env, "A", "C"); strings.Join(got, ";") != "B=2" {
		t.Errorf("UnsetEnv = %q", got)
	}
	if env[0] != "A=1" {
		t.Error("helpers modified their input")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
