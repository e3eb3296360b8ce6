package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// cliRunningLeads are how long the running CLI's access token stays outside
// the CLI's refresh window after the CLI starts. The scenario needs the CLI
// to start, and reach its first turn, before the token is due; on a loaded
// machine a round is repeated with a longer lead.
var cliRunningLeads = []time.Duration{4 * time.Second, 10 * time.Second, 20 * time.Second}

// TestCLIRunning is the launcher's steady state: the CLI is already running
// (a turn in flight, its tokens in memory) when codex-launch refreshes the
// credential under it, spending the refresh token the CLI holds in memory.
// When the CLI next needs a token (here: the model's answer is a tool call,
// and the CLI's follow-up request comes after its in-memory access token has
// entered its refresh window), it must re-read auth.json and adopt
// codex-launch's tokens: no token request, in particular not the spent one,
// and the follow-up request carries the new access token.
//
// The control runs the same turn without codex-launch: the CLI then refreshes
// by itself at that point, so the adoption is a decision the CLI took there,
// not a request that needed no token check. (A dropped and retried request is
// not enough to make the CLI decide: it retries with the header it built.)
func TestCLIRunning(t *testing.T) {
	cliEachVersion(t, func(t *testing.T, env *cliEnv, v cliVersion) {
		t.Run("control", func(t *testing.T) { t.Parallel(); cliRunningRetry(t, env, v, false) })
		t.Run("adopt", func(t *testing.T) { t.Parallel(); cliRunningRetry(t, env, v, true) })
		t.Run("launcher-loop", func(t *testing.T) { t.Parallel(); cliRunningLoopRetry(t, env, v, false) })
		t.Run("launcher-loop-race", func(t *testing.T) { t.Parallel(); cliRunningLoopRetry(t, env, v, true) })
	})
}

// cliRunningRetry runs the scenario with growing leads until the CLI reached
// its first turn before its token was due.
func cliRunningRetry(t *testing.T, env *cliEnv, v cliVersion, withLauncher bool) {
	for _, lead := range cliRunningLeads {
		if cliRunning(t, env, v, lead, withLauncher) {
			return
		}
		t.Logf("the CLI refreshed before its first turn request (it started later than %v): again with a longer lead", lead)
	}
	t.Fatalf("the CLI never reached its first turn within %v of starting", cliRunningLeads[len(cliRunningLeads)-1])
}

// cliRunning runs one attempt; false when the premise did not hold (the CLI
// was already due when it sent its first turn request).
func cliRunning(t *testing.T, env *cliEnv, v cliVersion, lead time.Duration, withLauncher bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newCLIScenario(t, env, nil)
	// Outside the CLI's window when it starts, inside it lead later.
	dueAt := time.Now().Add(lead)
	gen0 := s.TM.IssueWithExpiry(s.Account, dueAt.Add(v.Window))
	s.WriteAuth(gen0, nil)

	launched := make(chan cliResult, 1)
	var notDue atomic.Bool // the premise failed: the CLI was due at its first turn
	s.BE.OnTurn(func(n int) turnAction {
		if n != 1 {
			return turnReply
		}
		if s.tokenPosts() != 0 || !time.Now().Before(dueAt) {
			notDue.Store(true)
			return turnReply
		}
		// The CLI is mid-turn with generation 0 in memory: codex-launch
		// refreshes now; the answer, a tool call, comes once the CLI's
		// token is due, so its follow-up request needs a token decision.
		if withLauncher {
			launched <- s.Launch(ctx, "refresh", "--once")
		}
		time.Sleep(time.Until(dueAt.Add(time.Second)))
		return turnToolCall
	})

	turn := s.Turn(ctx, v, nil)
	if notDue.Load() {
		return false
	}
	if turn.Code != 0 || !strings.Contains(turn.Stdout, cliBackendReply) {
		t.Fatalf("the CLI's turn failed: %s", turn)
	}
	turns := s.BE.Turns()
	if len(turns) < 2 {
		t.Fatalf("the CLI sent no follow-up request after the tool call (%d turn requests)", len(turns))
	}
	if turns[0].AuthFP != cliFingerprint(gen0.AccessToken) {
		t.Fatalf("the first turn request did not carry generation 0: the CLI did not start with the old tokens in memory")
	}
	latest, _ := s.TM.Latest(s.Account)

	if !withLauncher {
		reqs := s.TM.Requests()
		if len(reqs) != 1 || reqs[0].Generation != 0 || cliRequester(reqs[0]) != "cli" {
			t.Fatalf("control: token requests %s, want the CLI's own refresh of generation 0 before its follow-up request", s.postsSummary())
		}
		t.Logf("control: CLI %s refreshed by itself mid-turn: %s", v.Version, s.postsSummary())
		return true
	}

	var lr cliResult
	select {
	case lr = <-launched:
	default:
		t.Fatalf("codex-launch never ran")
	}
	if lr.Code != 0 {
		t.Fatalf("codex-launch refresh --once during the CLI's turn: %s", lr)
	}
	desc := s.postsSummary()
	t.Logf("CLI %s running while codex-launch refreshed: exit %d, token requests %s", v.Version, turn.Code, desc)
	if n := s.tokenPosts(); n != 1 {
		t.Errorf("token requests %s: want only codex-launch's; the running CLI must adopt the file, not redeem the token it holds in memory", desc)
	}
	if last := turns[len(turns)-1]; last.AuthFP != cliFingerprint(latest.AccessToken) {
		t.Errorf("the follow-up request carried %s, want codex-launch's new access token %s (generation 0: %s)",
			last.AuthFP, cliFingerprint(latest.AccessToken), cliFingerprint(gen0.AccessToken))
	}
	if rt, _ := s.FileTokens(); rt != latest.RefreshToken {
		t.Errorf("auth.json does not hold the newest refresh token after the turn")
	}
	return true
}

// cliRunningLoopRetry is the same steady state end to end, with the
// watchdog loop instead of a one-off pass: `codex-launch -- codex exec`, the
// credential not yet due for codex-launch's prime (its safety margin is set
// just beyond the CLI's window), so the CLI starts with generation 0; the
// watchdog refreshes a moment later while the turn is in flight; the CLI's
// follow-up request, its token now due, must adopt the watchdog's tokens.
//
// With race, the watchdog's request is held until the CLI's own refresh has
// been answered: the CLI, due a second after the watchdog, finds the file
// unchanged, redeems generation 0 first, and the watchdog's request is then
// answered refresh_token_reused. The watchdog must take the CLI's rotation
// (not declare the login dead), the child's turn must complete with the CLI's
// new token, and codex-launch must exit with the child's 0.
func cliRunningLoopRetry(t *testing.T, env *cliEnv, v cliVersion, race bool) {
	for _, lead := range cliRunningLeads {
		if cliRunningLoop(t, env, v, lead, race) {
			return
		}
		t.Logf("the watchdog refreshed before the CLI's first turn request (it started later than %v): again with a longer lead", lead)
	}
	t.Fatalf("the CLI never reached its first turn before the watchdog's refresh")
}

func cliRunningLoop(t *testing.T, env *cliEnv, v cliVersion, lead time.Duration, race bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newCLIScenario(t, env, nil)
	margin := v.Window + time.Second
	// The watchdog's refresh is due lead from now, the CLI's a second later.
	refreshAt := time.Now().Add(lead)
	gen0 := s.TM.IssueWithExpiry(s.Account, refreshAt.Add(margin))
	dueAt := refreshAt.Add(time.Second)
	s.WriteAuth(gen0, nil)
	var gate *tokenmock.Gate
	if race {
		gate = s.TM.Hold(1)
	}

	var late atomic.Bool
	s.BE.OnTurn(func(n int) turnAction {
		if n != 1 {
			return turnReply
		}
		if s.tokenPosts() != 0 {
			late.Store(true)
			return turnReply
		}
		wctx, wcancel := context.WithTimeout(ctx, lead+10*time.Second)
		defer wcancel()
		_ = s.TM.WaitPosts(wctx, 1)
		time.Sleep(time.Until(dueAt.Add(500 * time.Millisecond)))
		return turnToolCall
	})
	released := make(chan struct{})
	if race {
		// Let the watchdog's request go once the CLI's has been answered
		// (or the CLI did not ask within a few seconds).
		go func() {
			defer close(released)
			defer gate.Release()
			deadline := time.Now().Add(lead + 15*time.Second)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if cliOutcomeOf(s.TM, "cli") != "" {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	} else {
		close(released)
	}
	r := s.Launch(ctx, "--safety-margin", margin.String(), "--", v.Bin, "exec", "--skip-git-repo-check", "say hi")
	<-released
	if late.Load() {
		return false
	}
	if r.Code != 0 || !strings.Contains(r.Stdout, cliBackendReply) {
		t.Fatalf("codex-launch -- codex exec: %s", r)
	}
	if race {
		cliLoopRaceCheck(t, s, v, r)
		return true
	}
	reqs := s.TM.Requests()
	if len(reqs) != 1 || cliRequester(reqs[0]) != "launcher" || reqs[0].Generation != 0 {
		t.Fatalf("token requests %s: want exactly the watchdog's refresh of generation 0\n%s", s.postsSummary(), r)
	}
	latest, _ := s.TM.Latest(s.Account)
	turns := s.BE.Turns()
	if len(turns) < 2 || turns[0].AuthFP != cliFingerprint(gen0.AccessToken) {
		t.Fatalf("want a first turn request with generation 0 and a follow-up (%d turn requests)", len(turns))
	}
	if last := turns[len(turns)-1]; last.AuthFP != cliFingerprint(latest.AccessToken) {
		t.Errorf("the follow-up request carried %s, want the watchdog's new access token %s", last.AuthFP, cliFingerprint(latest.AccessToken))
	}
	if rt, _ := s.FileTokens(); rt != latest.RefreshToken {
		t.Errorf("auth.json does not hold the watchdog's refresh token")
	}
	t.Logf("CLI %s under codex-launch, watchdog refreshed mid-turn: exit %d, token requests %s", v.Version, r.Code, s.postsSummary())
	return true
}

// cliLoopRaceCheck: the CLI redeemed generation 0, the watchdog's second
// redemption was refused, and codex-launch took the CLI's rotation.
func cliLoopRaceCheck(t *testing.T, s *cliScenario, v cliVersion, r cliResult) {
	desc := s.postsSummary()
	var cliWon, launcherLost bool
	for _, q := range s.TM.Requests() {
		switch {
		case cliRequester(q) == "cli" && q.Generation == 0 && q.Outcome == "refreshed":
			cliWon = true
		case cliRequester(q) == "launcher" && q.Generation == 0 && q.Outcome == "reused":
			launcherLost = true
		}
	}
	if !cliWon || !launcherLost || s.tokenPosts() != 2 {
		t.Fatalf("token requests %s: want the CLI's refresh of generation 0 and the watchdog's refused one\n%s", desc, r)
	}
	latest, _ := s.TM.Latest(s.Account)
	if rt, _ := s.FileTokens(); rt != latest.RefreshToken {
		t.Errorf("auth.json does not hold the CLI's rotated tokens")
	}
	turns := s.BE.Turns()
	if last := turns[len(turns)-1]; last.AuthFP != cliFingerprint(latest.AccessToken) {
		t.Errorf("the follow-up request did not carry the CLI's new access token")
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "auth_refresh_status.json"))
	if err != nil {
		t.Fatalf("status file: %v", err)
	}
	var st struct {
		Credential     string `json:"credential"`
		Outcome        string `json:"watchdog_last_outcome"`
		LastErrorClass string `json:"last_error_class"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("status file: %v", err)
	}
	if st.Credential == "dead" || st.LastErrorClass == "permanent" {
		t.Errorf("after losing the race to the CLI the watchdog reports credential %q, outcome %q, error class %q: the login is alive",
			st.Credential, st.Outcome, st.LastErrorClass)
	}
	t.Logf("CLI %s won the race against the watchdog mid-turn: exit %d, token requests %s, status %s/%s",
		v.Version, r.Code, desc, st.Credential, st.Outcome)
}
