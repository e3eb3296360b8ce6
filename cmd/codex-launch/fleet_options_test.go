package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

func TestFleetOptionDefaults(t *testing.T) {
	code, cfg, _, _, stderr := runCaptured(t, nil, "--", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	f := cfg.Fleet
	if f.Kind() != fleet.KindFile || f.Name != "default" || f.Fallback || f.PollInterval != 30*time.Second || f.Pooled ||
		f.FastPollInterval != 2*time.Second ||
		f.SyncInterval != time.Hour || f.TokenFile != "/configs/.auth_token" {
		t.Fatalf("defaults %+v", f)
	}
	if s, err := buildStore(context.Background(), cfg, nil, authwatch.Home{Dir: t.TempDir()}, hclog.NewNullLogger()); s != nil || err != nil {
		t.Fatalf("file store: %v %v", s, err)
	}
	if cfg.Fleet.Describe() != "file" {
		t.Fatalf("name %q", cfg.Fleet.Describe())
	}
}

func TestFleetOptionsParseAndNeverEchoThePassword(t *testing.T) {
	env := map[string]string{
		"CODEX_LAUNCH_CREDENTIAL_STORE":       "postgres://codex:s3cret-pw@db:5432/fleet?sslmode=require",
		"CODEX_LAUNCH_CREDENTIAL_NAME":        "team-a",
		"CODEX_LAUNCH_FLEET_FALLBACK_REFRESH": "yes",
		"CODEX_LAUNCH_FLEET_POLL_INTERVAL":    "45",
		"CODEX_LAUNCH_CREDENTIAL_STORE_MODE":  "pooled",
	}
	code, cfg, _, _, stderr := runCaptured(t, env, "--", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if cfg.Fleet.Kind() != fleet.KindPostgres || cfg.Fleet.Name != "team-a" || !cfg.Fleet.Fallback || cfg.Fleet.PollInterval != 45*time.Second ||
		!cfg.Fleet.Pooled {
		t.Fatalf("parsed %+v", cfg.Fleet)
	}
	if !cfg.RefreshOwner {
		t.Fatal("a postgres store must leave refresh-owner on")
	}
	name := cfg.Fleet.Describe()
	if strings.Contains(name, "s3cret-pw") || !strings.Contains(name, "db:5432") || !strings.Contains(name, "team-a") {
		t.Fatalf("store name %q", name)
	}

	for _, bad := range []map[string]string{
		{"CODEX_LAUNCH_CREDENTIAL_STORE": "ftp://u:s3cret-pw@host/x"},
		// url.Parse refuses it, so no redaction can be trusted with it.
		{"CODEX_LAUNCH_CREDENTIAL_STORE": "postgres://u:s3cret-pw x@db/fleet"},
		{"CODEX_LAUNCH_CREDENTIAL_STORE": "http://u:s3cret-pw@platform.example/"},
		// A DNS name is not loopback, whatever it starts with.
		{"CODEX_LAUNCH_CREDENTIAL_STORE": "http://127.platform.example/"},
		{"CODEX_LAUNCH_CREDENTIAL_NAME": " "},
		{"CODEX_LAUNCH_FLEET_POLL_INTERVAL": "0"},
		{"CODEX_LAUNCH_FLEET_FALLBACK_REFRESH": "perhaps"},
	} {
		code, _, _, _, stderr := runCaptured(t, bad, "--", "true")
		if code != exitLaunch {
			t.Errorf("%v: exit %d, want %d", bad, code, exitLaunch)
		}
		if strings.Contains(stderr, "s3cret-pw") {
			t.Errorf("%v: the error echoes the password: %s", bad, stderr)
		}
		for k := range bad {
			if !strings.Contains(stderr, k) {
				t.Errorf("%v: the error does not name %s: %s", bad, k, stderr)
			}
		}
	}
}

func TestPlatformStoreIsFollowerOnly(t *testing.T) {
	// Plain http is allowed on loopback only, localhost or any loopback address.
	for _, store := range []string{"https://platform.example/api", "http://localhost:8080/", "http://127.0.0.2/", "http://[::1]:8080/"} {
		env := map[string]string{"CODEX_LAUNCH_CREDENTIAL_STORE": store, "CODEX_AUTH_REFRESH_OWNER": "1"}
		code, cfg, _, _, stderr := runCaptured(t, env, "--", "true")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", store, code, stderr)
		}
		if cfg.Fleet.Kind() != fleet.KindPlatform || cfg.RefreshOwner {
			t.Fatalf("%s: kind %s, refresh owner %v: a platform store must never refresh", store, cfg.Fleet.Kind(), cfg.RefreshOwner)
		}
	}
}

// The platform store's name, in logs and the status file, keeps no user
// information, query or fragment: any of them may carry a token.
func TestPlatformStoreNameIsRedacted(t *testing.T) {
	env := map[string]string{"CODEX_LAUNCH_CREDENTIAL_STORE": "https://u:pw@platform.example/api?token=" + tokenmock.Sentinel + "#frag"}
	code, cfg, _, _, stderr := runCaptured(t, env, "--", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := cfg.Fleet.Describe(); got != "platform https://platform.example/api" {
		t.Fatalf("store name %q", got)
	}
	// A "/" in the password ends the authority early: the parse finds no
	// user information and keeps the password's rest in the port and path.
	env["CODEX_LAUNCH_CREDENTIAL_STORE"] = "https://u:8/" + tokenmock.Sentinel + "@platform.example/api"
	if code, cfg, _, _, stderr = runCaptured(t, env, "--", "true"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := cfg.Fleet.Describe(); got != "platform" {
		t.Fatalf("store name %q", got)
	}
}

// buildStore hands each kind of shared store to fleet.Start whole: the store
// comes back started, under fleetStoreName, once its follower's first sync
// is done (long before the prime timeout).
func TestBuildStoreStartsTheFollower(t *testing.T) {
	asked := make(chan string, 10)
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.URL.Path + " " + r.Header.Get("Authorization")
		w.Write([]byte("{}"))
	}))
	defer platform.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("platform-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The workspace comes from the command's environment (the env
	// directory merged), not from the process's.
	env := []string{"WORKSPACE_ID=ws-0", "WORKSPACE_ID=ws-1"}

	for _, store := range []string{
		platform.URL,
		// Nothing listens on port 1: the first attempt fails at once.
		"postgres://codex@127.0.0.1:1/fleet",
	} {
		cfg := &Config{
			Fleet:        fleet.Settings{Store: store, Name: "default", TokenFile: tokenFile, SyncInterval: time.Hour, PollInterval: time.Hour},
			PrimeTimeout: time.Minute, RefreshTimeout: 10 * time.Second,
		}
		t0 := time.Now()
		r, err := buildStore(context.Background(), cfg, env, authwatch.Home{Dir: t.TempDir()}, hclog.NewNullLogger())
		if err != nil || r == nil {
			t.Fatalf("%s: %v %v", store, r, err)
		}
		took := time.Since(t0)
		if took > 30*time.Second {
			t.Errorf("%s: buildStore took %v: it did not end the wait at the first sync", store, took)
		}
		if r.String() != cfg.Fleet.Describe() {
			t.Errorf("%s: name %q, want %q", store, r.String(), cfg.Fleet.Describe())
		}
		if err := r.Close(); err != nil {
			t.Errorf("%s: Close: %v", store, err)
		}
	}
	select {
	case got := <-asked:
		if got != "/workspaces/ws-1/secrets/values Bearer platform-token" {
			t.Errorf("the platform was asked %q", got)
		}
	default:
		t.Error("the platform source never synced")
	}
}

// Sealing keys that do not parse stop the launch with an error that names
// the key variables and never quotes a key.
func TestBadKeysAreAUsageError(t *testing.T) {
	cfg := &Config{Fleet: fleet.Settings{Store: "postgres://codex@127.0.0.1:1/fleet", Name: "default", Keys: "bad:c2hvcnQ="}}
	_, err := buildStore(context.Background(), cfg, nil, authwatch.Home{Dir: t.TempDir()}, hclog.NewNullLogger())
	var ue *UsageError
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "c2hvcnQ=") || !strings.Contains(err.Error(), "CODEX_LAUNCH_CREDENTIAL_KEYS") {
		t.Fatalf("bad key: %v", err)
	}
}

func TestStoreFlagRefusesAPassword(t *testing.T) {
	for _, raw := range []string{
		"postgres://codex:s3cret-pw@db/fleet",
		"postgres://codex@db/fleet?password=s3cret-pw",
		"postgres://codex:s3cret-pw x@db/fleet",
		"https://u:s3cret-pw@platform.example/",
		// A "/", "?" or "#" in the password ends the authority early: the
		// parse sees no user info and puts the password in the host or path.
		"postgres://codex:8/s3cret-pw@db/fleet",
		"postgres://codex:8?s3cret-pw@db/fleet",
		"postgres://codex:8#s3cret-pw@db/fleet",
		"postgres://codex:8/s3cret-pw@db/fleet?sslmode=require",
	} {
		err := storeFlagCheck(raw)
		if err == nil {
			t.Errorf("%s: accepted as a flag", raw)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "s3cret-pw") || !strings.Contains(msg, "--credential-store") ||
			!strings.Contains(msg, "CODEX_LAUNCH_CREDENTIAL_STORE") || !strings.Contains(msg, "PGPASSFILE") {
			t.Errorf("%s: %s", raw, msg)
		}
	}
	for _, raw := range []string{"", "file", "postgres://codex@db/fleet?sslmode=require", "https://platform.example/api"} {
		if err := storeFlagCheck(raw); err != nil {
			t.Errorf("%q refused as a flag: %v", raw, err)
		}
	}
	// From the variable a password stays allowed (the flag check is argv's).
	env := map[string]string{"CODEX_LAUNCH_CREDENTIAL_STORE": "postgres://codex:s3cret-pw@db/fleet"}
	if code, _, _, _, stderr := runCaptured(t, env, "--", "true"); code != 0 {
		t.Fatalf("variable with a password: exit %d: %s", code, stderr)
	}
}

// The help text must not steer the password into PGPASSWORD, which the
// child inherits.
func TestStoreUsageRecommendsAPassFile(t *testing.T) {
	for _, o := range fleetOptions() {
		if o.Env != "CODEX_LAUNCH_CREDENTIAL_STORE" {
			continue
		}
		if !strings.Contains(o.Usage, "PGPASSFILE") || !strings.Contains(o.Usage, "PGPASSWORD, if used, is inherited by the child") {
			t.Fatalf("usage: %s", o.Usage)
		}
		return
	}
	t.Fatal("no credential-store option")
}

// A password in the store URL never travels in argv: given as the flag it is
// refused before anything happens; without a password the flag is fine.
func TestStoreFlagWithPasswordIsAUsageError(t *testing.T) {
	code, _, _, _, stderr := runCaptured(t, nil, "--credential-store=postgres://u:s3cret-pw@db/x", "--", "true")
	if code != exitLaunch || strings.Contains(stderr, "s3cret-pw") || !strings.Contains(stderr, "CODEX_LAUNCH_CREDENTIAL_STORE") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}
