package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCLIAdoption: after codex-launch refreshes a credential that the CLI
// itself would refresh before its next turn, the CLI accepts the file
// (`codex login status` reports ChatGPT) and its turn reaches the backend
// with codex-launch's new access token, without a single token request.
//
// A control run first shows the same credential does make this CLI refresh
// when codex-launch has not: so "zero token requests" is the adoption, not a
// CLI that never refreshes.
func TestCLIAdoption(t *testing.T) {
	cliEachVersion(t, func(t *testing.T, env *cliEnv, v cliVersion) {
		t.Run("control", func(t *testing.T) { cliAdoptionControl(t, env, v) })
		t.Run("adopt", func(t *testing.T) { cliAdoption(t, env, v) })
	})
}

// cliAdoptionControl: without codex-launch, the CLI refreshes the expiring
// credential itself (one POST) before its turn.
func cliAdoptionControl(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, _ := newDueCLIScenario(t, env, v, nil)

	r := s.Turn(ctx, v, nil)
	if r.Code != 0 || !strings.Contains(r.Stdout, cliBackendReply) {
		t.Fatalf("control turn failed: %s", r)
	}
	if got := s.tokenPosts(); got != 1 {
		t.Fatalf("control: the CLI made %d token requests with %v left on its access token, want 1 (%s): the premise of the adoption test does not hold for %s",
			got, v.RefreshBelow, s.postsSummary(), v.Version)
	}
	t.Logf("control: CLI %s refreshed by itself: %s", v.Version, s.postsSummary())
}

func cliAdoption(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, old := newDueCLIScenario(t, env, v, nil)

	r := s.Launch(ctx, "refresh", "--once")
	if r.Code != 0 {
		t.Fatalf("codex-launch refresh --once: want exit 0 (refreshed): %s", r)
	}
	latest, _ := s.TM.Latest(s.Account)
	if latest.Generation != 1 || s.tokenPosts() != 1 {
		t.Fatalf("after codex-launch's refresh: generation %d, %d POSTs (%s), want 1 and 1", latest.Generation, s.tokenPosts(), s.postsSummary())
	}
	rt, at := s.FileTokens()
	if rt != latest.RefreshToken || at != latest.AccessToken {
		t.Fatalf("auth.json does not hold the refreshed tokens")
	}

	st := s.Codex(ctx, v, nil, "login", "status")
	if st.Code != 0 || !strings.Contains(st.Stdout+st.Stderr, "ChatGPT") {
		t.Fatalf("codex login status does not report a ChatGPT login: %s", st)
	}

	turn := s.Turn(ctx, v, nil)
	if turn.Code != 0 || !strings.Contains(turn.Stdout, cliBackendReply) {
		t.Fatalf("turn after codex-launch's refresh failed: %s", turn)
	}
	if got := s.tokenPosts(); got != 1 {
		t.Errorf("the CLI made %d token requests after codex-launch refreshed (%s), want none", got-1, s.postsSummary())
	}
	turns := s.BE.Turns()
	if len(turns) == 0 {
		t.Fatalf("the turn never reached the backend")
	}
	newFP, oldFP := cliFingerprint(latest.AccessToken), cliFingerprint(old.AccessToken)
	for _, tr := range turns {
		if tr.AuthFP != newFP {
			t.Errorf("turn %s %s carried token %s, want codex-launch's new access token %s (old %s)", tr.Method, tr.Path, tr.AuthFP, newFP, oldFP)
		}
	}
	for _, br := range s.BE.Requests() {
		if br.AuthFP == oldFP {
			t.Errorf("backend request %s %s used the old access token", br.Method, br.Path)
		}
	}
	if rt2, _ := s.FileTokens(); rt2 != latest.RefreshToken {
		t.Errorf("the CLI replaced the refresh token codex-launch committed")
	}
	t.Logf("CLI %s backend requests during the turn: %s", v.Version, s.BE.Summary())
	t.Logf("CLI %s adopted codex-launch's tokens: %d backend requests, %d turn(s), token POSTs: %s",
		v.Version, len(s.BE.Requests()), len(turns), s.postsSummary())
}
