package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// cliRunningLead is how long the running CLI's access token stays outside
// the CLI's refresh window after the CLI starts.
const cliRunningLead = 4 * time.Second

// TestCLIRunning is the launcher's steady state: the CLI is already running
// (a turn in flight, its tokens in memory) when codex-launch refreshes the
// credential under it, spending the refresh token the CLI holds in memory.
// When the CLI next needs a token (here: the model's answer is a tool call,
// and the CLI's follow-up request comes after its in-memory access token has
// entered its refresh window), it must re-read auth.json and adopt
// codex-launch's tokens: no token request, in particular not the spent one,
// and the follow-up request carries the new access token.
func TestCLIRunning(t *testing.T) {
	env := cliSetup(t)
	if env == nil {
		return
	}
	for _, v := range env.Versions {
		t.Run(v.Version, func(t *testing.T) {
			t.Parallel()
			t.Run("control", func(t *testing.T) { cliRunningControl(t, env, v) })
			t.Run("adopt", func(t *testing.T) { cliRunning(t, env, v) })
		})
	}
}

func cliRunning(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIScenario(t, env, tokenmock.Options{}, nil)
	// Outside the CLI's window when it starts, inside it a few seconds on.
	dueAt := time.Now().Add(cliRunningLead)
	gen0 := s.TM.IssueWithExpiry(s.Account, dueAt.Add(v.Window))
	s.WriteAuth(gen0, nil)

	launched := make(chan cliResult, 1)
	s.BE.OnTurn(func(n int) turnAction {
		if n != 1 {
			return turnReply
		}
		// The CLI is mid-turn with generation 0 in memory: codex-launch
		// refreshes now, then the turn is dropped once the CLI's token is
		// due, so the CLI's retry has to decide what to do.
		launched <- s.Launch(ctx, "refresh", "--once")
		time.Sleep(time.Until(dueAt.Add(time.Second)))
		return turnToolCall
	})

	turn := s.Turn(ctx, v, nil)
	var lr cliResult
	select {
	case lr = <-launched:
	default:
		t.Fatalf("the CLI's turn never reached the backend: %s", turn)
	}
	t.Logf("codex-launch during the turn: %s", lr)
	if lr.Code != 0 {
		t.Fatalf("codex-launch refresh --once during the CLI's turn: %s", lr)
	}
	latest, _ := s.TM.Latest(s.Account)
	desc := s.postsSummary()
	t.Logf("CLI %s running while codex-launch refreshed: exit %d, token requests %s, backend %s",
		v.Version, turn.Code, desc, s.BE.Summary())
	if n := s.tokenPosts(); n != 1 {
		t.Errorf("token requests %s: want only codex-launch's; the running CLI must adopt the file, not redeem the token it holds in memory", desc)
	}
	if turn.Code != 0 || !strings.Contains(turn.Stdout, cliBackendReply) {
		t.Errorf("the CLI's turn failed after codex-launch refreshed under it: %s", turn)
	}
	turns := s.BE.Turns()
	if len(turns) > 0 && turns[0].AuthFP != cliFingerprint(gen0.AccessToken) {
		t.Errorf("the first turn request did not carry generation 0: the CLI did not start with the old tokens in memory")
	}
	if len(turns) < 2 {
		t.Fatalf("the CLI sent no follow-up request after the tool call (%d turn requests)", len(turns))
	}
	if last := turns[len(turns)-1]; last.AuthFP != cliFingerprint(latest.AccessToken) {
		t.Errorf("the follow-up request carried %s, want codex-launch's new access token %s (generation 0: %s)",
			last.AuthFP, cliFingerprint(latest.AccessToken), cliFingerprint(gen0.AccessToken))
	}
	if rt, _ := s.FileTokens(); rt != latest.RefreshToken {
		t.Errorf("auth.json does not hold the newest refresh token after the turn")
	}
}

// cliRunningControl: the same turn without codex-launch. The CLI's follow-up
// request, with its token now inside its window, makes it refresh by itself:
// so the adoption above is a decision the CLI took at that point, not a
// request that needed no token check.
func cliRunningControl(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIScenario(t, env, tokenmock.Options{}, nil)
	dueAt := time.Now().Add(cliRunningLead)
	gen0 := s.TM.IssueWithExpiry(s.Account, dueAt.Add(v.Window))
	s.WriteAuth(gen0, nil)
	s.BE.OnTurn(func(n int) turnAction {
		if n != 1 {
			return turnReply
		}
		time.Sleep(time.Until(dueAt.Add(time.Second)))
		return turnToolCall
	})
	turn := s.Turn(ctx, v, nil)
	if turn.Code != 0 {
		t.Fatalf("control turn failed: %s", turn)
	}
	reqs := s.TM.Requests()
	if len(reqs) != 1 || reqs[0].Generation != 0 || cliRequester(reqs[0]) != "cli" {
		t.Fatalf("control: token requests %s, want the CLI's own refresh of generation 0 at its follow-up request", s.postsSummary())
	}
	t.Logf("control: CLI %s refreshed by itself mid-turn: %s", v.Version, s.postsSummary())
}
