package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIRestart: a container that is restarted keeps its CODEX_HOME volume
// and its CODEX_AUTH_JSON secret, the original copy of the login. The first
// boot seeds auth.json from the secret and the credential is then rotated
// (by the CLI itself for 0.171.0, whose window the credential is in while
// codex-launch's margin is not; by the prime for 0.130.0, for which it has
// expired); the second boot, same secret, must not put the spent copy back:
// the CLI's turn then needs no token request and uses the rotated tokens.
// config.toml starts without the credential-store key and with a trailing
// table, so boot must insert the key where the real CLI reads it.
func TestCLIRestart(t *testing.T) {
	cliEachVersion(t, cliRestart)
}

func cliRestart(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newCLIScenario(t, env, nil)
	cfgPath := filepath.Join(s.Dir, "config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("cli_auth_credentials_store = \"file\"\n"), nil, 1)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	gen0 := s.TM.IssueWithExpiry(s.Account, time.Now().Add(v.RefreshBelow))
	secret := "CODEX_AUTH_JSON=" + string(s.TM.AuthJSON(gen0, time.Now().Add(-time.Hour)))
	args := []string{"--safety-margin", "1s", "--", v.Bin, "exec", "--skip-git-repo-check", "say hi"}

	first := s.LaunchEnv(ctx, []string{secret}, args...)
	if first.Code != 0 || !strings.Contains(first.Stdout, cliBackendReply) {
		t.Fatalf("first boot: %s", first)
	}
	g1, _ := s.TM.Latest(s.Account)
	if g1.Generation != 1 || s.tokenPosts() != 1 {
		t.Fatalf("first boot: want one rotation, token requests %s", s.postsSummary())
	}
	if rt, _ := s.FileTokens(); rt != g1.RefreshToken {
		t.Fatalf("first boot: auth.json does not hold the rotated tokens")
	}
	cfg, _ = os.ReadFile(cfgPath)
	if !bytes.Contains(cfg, []byte("cli_auth_credentials_store")) {
		t.Errorf("boot did not add the credential-store key to config.toml")
	}
	rotatedBy := cliRequester(s.TM.Requests()[0])

	second := s.LaunchEnv(ctx, []string{secret}, args...)
	if second.Code != 0 || !strings.Contains(second.Stdout, cliBackendReply) {
		t.Fatalf("second boot with the same CODEX_AUTH_JSON: %s", second)
	}
	if n := s.tokenPosts(); n != 1 {
		t.Errorf("second boot: token requests %s, want none after the first boot's rotation (the spent copy was put back?)", s.postsSummary())
	}
	if rt, _ := s.FileTokens(); rt != g1.RefreshToken {
		t.Errorf("second boot: auth.json no longer holds the rotated tokens")
	}
	turns := s.BE.Turns()
	if last := turns[len(turns)-1]; last.AuthFP != cliFingerprint(g1.AccessToken) {
		t.Errorf("second boot: the turn did not use the rotated access token")
	}
	t.Logf("CLI %s: first boot seeded and the %s rotated; second boot with the same secret kept the rotated file: token requests %s",
		v.Version, rotatedBy, s.postsSummary())
}
