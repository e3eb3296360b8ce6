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

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

type seedFixture struct {
	t    *testing.T
	mock *tokenmock.Server
	home string
	logs bytes.Buffer
}

func newSeedFixture(t *testing.T) *seedFixture {
	mock := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	t.Cleanup(mock.Close)
	return &seedFixture{t: t, mock: mock, home: t.TempDir()}
}

func (f *seedFixture) authPath() string { return filepath.Join(f.home, "auth.json") }

func (f *seedFixture) writeFile(data []byte) {
	f.t.Helper()
	if err := os.WriteFile(f.authPath(), data, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *seedFixture) read() []byte {
	f.t.Helper()
	data, err := os.ReadFile(f.authPath())
	if err != nil {
		f.t.Fatal(err)
	}
	return data
}

func (f *seedFixture) seed(env ...string) (SeedResult, error) {
	return SeedAuth(context.Background(), SeedOptions{Home: f.home, Environ: env, Logger: testLogger(&f.logs), LockTimeout: time.Second})
}

// check fails when a token reached the log or the error.
func (f *seedFixture) checkClean(err error) {
	f.t.Helper()
	if leaks := f.mock.Leaks(f.logs.Bytes()); len(leaks) > 0 {
		f.t.Errorf("log leaks %v:\n%s", leaks, f.logs.String())
	}
	if err != nil {
		if leaks := f.mock.Leaks([]byte(err.Error())); len(leaks) > 0 {
			f.t.Errorf("error leaks %v: %v", leaks, err)
		}
	}
}

func sameTokens(t *testing.T, data []byte, c tokenmock.Credential) {
	t.Helper()
	if !bytes.Contains(data, []byte(c.RefreshToken)) || !bytes.Contains(data, []byte(c.AccessToken)) {
		t.Errorf("auth.json does not hold the expected credential (generation %d)", c.Generation)
	}
}

func TestSeedRules(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	type tc struct {
		name   string
		file   func(f *seedFixture, v tokenmock.Credential) []byte // nil: no file
		varLR  time.Duration                                       // the variable's last_refresh relative to now
		action SeedAction
		keep   bool // the file must be unchanged
	}
	older := func(f *seedFixture, v tokenmock.Credential) []byte {
		c := f.mock.Issue("acct-1")
		return tokenmock.FormatAuthJSON(c, now.Add(-2*time.Hour), tokenmock.FileOptions{})
	}
	cases := []tc{
		{"no file", nil, 0, SeedWritten, false},
		{"empty file", func(*seedFixture, tokenmock.Credential) []byte { return nil }, 0, SeedWritten, false},
		{"whitespace file", func(*seedFixture, tokenmock.Credential) []byte { return []byte(" \n") }, 0, SeedWritten, false},
		{"unparseable file", func(*seedFixture, tokenmock.Credential) []byte { return []byte(`{"tokens": {`) }, 0, SeedWritten, false},
		{"no credential in file", func(*seedFixture, tokenmock.Credential) []byte { return []byte(`{}`) }, 0, SeedWritten, false},
		{"identical", func(f *seedFixture, v tokenmock.Credential) []byte {
			return tokenmock.FormatAuthJSON(v, now.Add(-time.Hour), tokenmock.FileOptions{})
		}, -time.Hour, SeedKept, true},
		{"rotated file is fresher", func(f *seedFixture, v tokenmock.Credential) []byte {
			c := f.mock.Issue("acct-1")
			return tokenmock.FormatAuthJSON(c, now, tokenmock.FileOptions{})
		}, -time.Hour, SeedKept, true},
		{"same last_refresh, same expiry, other tokens", func(f *seedFixture, v tokenmock.Credential) []byte {
			c := f.mock.IssueWithExpiry("acct-1", v.AccessExpiry)
			return tokenmock.FormatAuthJSON(c, now.Add(-time.Hour), tokenmock.FileOptions{})
		}, -time.Hour, SeedKept, true},
		{"same last_refresh, the file expires later", func(f *seedFixture, v tokenmock.Credential) []byte {
			c := f.mock.IssueWithExpiry("acct-1", v.AccessExpiry.Add(time.Hour))
			return tokenmock.FormatAuthJSON(c, now.Add(-time.Hour), tokenmock.FileOptions{})
		}, -time.Hour, SeedKept, true},
		{"same last_refresh, the variable expires later", func(f *seedFixture, v tokenmock.Credential) []byte {
			c := f.mock.IssueWithExpiry("acct-1", v.AccessExpiry.Add(-30*time.Minute))
			return tokenmock.FormatAuthJSON(c, now.Add(-time.Hour), tokenmock.FileOptions{})
		}, -time.Hour, SeedReplaced, false},
		{"variable is fresher", older, -time.Hour, SeedReplaced, false},
		{"another account", func(f *seedFixture, v tokenmock.Credential) []byte {
			c := f.mock.Issue("acct-2")
			return tokenmock.FormatAuthJSON(c, now, tokenmock.FileOptions{})
		}, -time.Hour, SeedAccount, false},
		{"API-key file", func(f *seedFixture, v tokenmock.Credential) []byte {
			return tokenmock.FormatAuthJSON(tokenmock.Credential{}, now, tokenmock.FileOptions{Mode: "apikey", APIKey: "sk-" + tokenmock.Sentinel, NoTokens: true})
		}, -time.Hour, SeedAccount, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newSeedFixture(t)
			v := f.mock.Issue("acct-1")
			varJSON := tokenmock.FormatAuthJSON(v, now.Add(c.varLR), tokenmock.FileOptions{})
			var before []byte
			if c.file != nil {
				before = c.file(f, v)
				f.writeFile(before)
			}
			res, err := f.seed("CODEX_AUTH_JSON=" + string(varJSON))
			f.checkClean(err)
			if err != nil {
				t.Fatal(err)
			}
			if res.Action != c.action || res.Variable != "CODEX_AUTH_JSON" || res.Reason == "" {
				t.Errorf("result = %+v, want action %s", res, c.action)
			}
			if !res.Materialised() {
				t.Error("not materialised")
			}
			after := f.read()
			if c.keep {
				if !bytes.Equal(after, before) {
					t.Error("auth.json changed, want it kept")
				}
			} else {
				sameTokens(t, after, v)
			}
			st, _ := os.Stat(f.authPath())
			if st.Mode().Perm() != 0o600 {
				t.Errorf("auth.json mode %v, want 0600", st.Mode().Perm())
			}
			if !strings.Contains(f.logs.String(), "seed:") {
				t.Errorf("no seed log line:\n%s", f.logs.String())
			}
			if c.action == SeedAccount && !strings.Contains(f.logs.String(), "[WARN]") {
				t.Errorf("replacing another account did not warn:\n%s", f.logs.String())
			}
			leftovers, _ := filepath.Glob(filepath.Join(f.home, ".*tmp"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

// TestSeedFreshnessEvidence: the reason names what decided. last_refresh
// decides when both sides have one and they differ; an equal last_refresh
// falls through to the access token's expiry; with neither telling, the file
// is kept.
func TestSeedFreshnessEvidence(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	lr := now.Add(-time.Hour)
	cases := []struct {
		name            string
		fileLR          time.Time
		fileExp, varExp time.Duration // from now
		action          SeedAction
		reason          string
	}{
		{"later last_refresh in the variable", lr.Add(-time.Minute), 2 * time.Hour, time.Hour, SeedReplaced, "last_refresh"},
		{"equal last_refresh, variable expires later", lr, time.Hour, 2 * time.Hour, SeedReplaced, "access token expiry"},
		{"equal last_refresh, file expires later", lr, 2 * time.Hour, time.Hour, SeedKept, "access token expiry"},
		{"equal last_refresh, equal expiry", lr, time.Hour, time.Hour, SeedKept, "neither"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newSeedFixture(t)
			file := f.mock.IssueWithExpiry("acct-1", now.Add(c.fileExp))
			v := f.mock.IssueWithExpiry("acct-1", now.Add(c.varExp))
			f.writeFile(tokenmock.FormatAuthJSON(file, c.fileLR, tokenmock.FileOptions{}))
			res, err := f.seed("CODEX_AUTH_JSON=" + string(tokenmock.FormatAuthJSON(v, lr, tokenmock.FileOptions{})))
			f.checkClean(err)
			if err != nil {
				t.Fatal(err)
			}
			if res.Action != c.action || !strings.Contains(res.Reason, c.reason) {
				t.Errorf("result = %+v, want action %s, reason naming %q", res, c.action, c.reason)
			}
			want := file
			if c.action == SeedReplaced {
				want = v
			}
			sameTokens(t, f.read(), want)
		})
	}
}

func TestSeedFreshnessByExpiry(t *testing.T) {
	// Without last_refresh the access token's expiry decides.
	f := newSeedFixture(t)
	later := f.mock.IssueWithExpiry("acct-1", time.Now().Add(2*time.Hour))
	sooner := f.mock.IssueWithExpiry("acct-1", time.Now().Add(time.Hour))
	noLR := tokenmock.FileOptions{NoLastRefresh: true}

	f.writeFile(tokenmock.FormatAuthJSON(later, time.Time{}, noLR))
	res, err := f.seed("CODEX_AUTH_JSON=" + string(tokenmock.FormatAuthJSON(sooner, time.Time{}, noLR)))
	if err != nil || res.Action != SeedKept {
		t.Fatalf("file expiring later: %+v %v, want kept", res, err)
	}
	sameTokens(t, f.read(), later)

	f.writeFile(tokenmock.FormatAuthJSON(sooner, time.Time{}, noLR))
	res, err = f.seed("CODEX_AUTH_JSON=" + string(tokenmock.FormatAuthJSON(later, time.Time{}, noLR)))
	if err != nil || res.Action != SeedReplaced {
		t.Fatalf("variable expiring later: %+v %v, want replaced", res, err)
	}
	sameTokens(t, f.read(), later)
	f.checkClean(err)
}

func TestSeedInvalidVariable(t *testing.T) {
	f := newSeedFixture(t)
	good := f.mock.Issue("acct-1")
	before := tokenmock.FormatAuthJSON(good, time.Now(), tokenmock.FileOptions{})
	for _, bad := range []string{
		"rt_" + tokenmock.Sentinel + "_not_json",
		`["` + tokenmock.Sentinel + `"]`,
		`{"auth_mode": "chatgpt", "tokens": {"access_token": "` + tokenmock.Sentinel + `"}}`,
		`{"auth_mode": "chatgpt"}`,
		`{"auth_mode": 42}`,
		`{"tokens": "` + tokenmock.Sentinel + `"}`,
	} {
		f.writeFile(before)
		f.logs.Reset()
		_, err := f.seed("CODEX_AUTH_JSON=" + bad)
		if !errors.Is(err, ErrInvalidCredential) {
			t.Errorf("%.30q: err = %v, want ErrInvalidCredential", bad, err)
			continue
		}
		if !strings.Contains(err.Error(), "CODEX_AUTH_JSON") {
			t.Errorf("error does not name the variable: %v", err)
		}
		if strings.Contains(err.Error(), tokenmock.Sentinel) || strings.Contains(f.logs.String(), tokenmock.Sentinel) {
			t.Errorf("the value leaked: %v\n%s", err, f.logs.String())
		}
		if !bytes.Equal(f.read(), before) {
			t.Errorf("%.30q: auth.json changed", bad)
		}
	}
	// Without a file, nothing is created either.
	os.Remove(f.authPath())
	if _, err := f.seed("CODEX_AUTH_JSON={}"); err == nil {
		t.Error("{} accepted")
	}
	if _, err := os.Stat(f.authPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("auth.json created from an invalid variable: %v", err)
	}
}

func TestSeedVariables(t *testing.T) {
	f := newSeedFixture(t)
	a, b := f.mock.Issue("acct-a"), f.mock.Issue("acct-b")
	ja := string(tokenmock.FormatAuthJSON(a, time.Now(), tokenmock.FileOptions{}))
	jb := string(tokenmock.FormatAuthJSON(b, time.Now(), tokenmock.FileOptions{}))

	res, err := f.seed("CODEX_CHATGPT_AUTH_JSON="+jb, "CODEX_AUTH_JSON="+ja)
	if err != nil || res.Variable != "CODEX_AUTH_JSON" {
		t.Fatalf("%+v %v: want CODEX_AUTH_JSON to win", res, err)
	}
	sameTokens(t, f.read(), a)

	os.Remove(f.authPath())
	res, err = f.seed("CODEX_AUTH_JSON=  \n", "CODEX_CHATGPT_AUTH_JSON="+jb)
	if err != nil || res.Variable != "CODEX_CHATGPT_AUTH_JSON" || res.Action != SeedWritten {
		t.Fatalf("%+v %v: an empty CODEX_AUTH_JSON must fall through to the alias", res, err)
	}
	sameTokens(t, f.read(), b)

	res, err = f.seed("OTHER=1")
	if err != nil || res.Action != SeedNone || res.Materialised() {
		t.Fatalf("no variable: %+v %v", res, err)
	}
	sameTokens(t, f.read(), b)
	f.checkClean(err)
}

func TestSeedOwner(t *testing.T) {
	testenv.RequireRoot(t)
	f := newSeedFixture(t)
	if err := os.Chmod(f.home, 0o755); err != nil {
		t.Fatal(err)
	}
	v := f.mock.Issue("acct-1")
	res, err := SeedAuth(context.Background(), SeedOptions{
		Home: f.home, Owner: &User{UID: 4321, GID: 4322},
		Environ: []string{"CODEX_AUTH_JSON=" + string(tokenmock.FormatAuthJSON(v, time.Now(), tokenmock.FileOptions{}))},
	})
	if err != nil || res.Action != SeedWritten {
		t.Fatalf("%+v %v", res, err)
	}
	assertOwner(t, f.authPath(), 4321, 4322)
	for _, lock := range []string{"auth.lock", "auth.json.lock"} {
		if _, err := os.Stat(filepath.Join(f.home, lock)); err == nil {
			assertOwner(t, filepath.Join(f.home, lock), 4321, 4322)
		}
	}
}
