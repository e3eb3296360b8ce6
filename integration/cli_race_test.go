package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// cliRaceHold bounds how long the token endpoint holds the first refresh
// request of a round: long enough for the other side to start, decide and
// send its own, which is answered first.
const cliRaceHold = 1200 * time.Millisecond

// cliRaceOrders are the interleavings of TestCLIRace.
var cliRaceOrders = []string{"cli-first", "launcher-first", "both"}

// TestCLIRace: codex-launch (`refresh --once`) and the CLI (a turn with an
// access token inside its refresh window) decide to refresh the same
// credential at the same moment, the token endpoint holding the first request
// for a while. Whatever the interleaving, repeated over rounds:
//   - a refresh-token generation is redeemed at most twice, and a second
//     redemption (refresh_token_reused) only by a side that then recovers:
//     the CLI's turn still completes, codex-launch's next pass is not stuck
//     on a "dead" credential;
//   - auth.json ends with the newest tokens the endpoint issued, their
//     refresh token unspent;
//   - the CLI's next turn needs no token request and uses those tokens.
func TestCLIRace(t *testing.T) {
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv(cliRoundsEnv)); err == nil && v > 0 {
		rounds = v
	}
	cliEachVersion(t, func(t *testing.T, env *cliEnv, v cliVersion) {
		for _, order := range cliRaceOrders {
			t.Run(order, func(t *testing.T) {
				var tally cliRaceTally
				for i := 0; i < rounds; i++ {
					tally.add(cliRaceRound(t, env, v, order, i))
				}
				t.Logf("RACE %s %s: %s", v.Version, order, tally)
			})
		}
	})
}

// cliRaceResult is what one round showed.
type cliRaceResult struct {
	Posts, Reused  int
	Winner         string // who redeemed generation 0: "cli" or "launcher"
	CLIExit        int
	LauncherExit   int
	LauncherLost   bool // codex-launch got refresh_token_reused
	CLILost        bool
	DoubleSpent    bool
	LauncherPosted bool
	// TurnToken says which access token the CLI's racing turn carried:
	// "old" (generation 0), "new" (the newest), or "mixed".
	TurnToken string
}

type cliRaceTally struct {
	rounds, double, cliWins, launcherWins, cliLost, launcherLost, launcherNoPost int
	launcherExits                                                                map[int]int
	turnTokens                                                                   map[string]int
}

func (t *cliRaceTally) add(r cliRaceResult) {
	t.rounds++
	if r.DoubleSpent {
		t.double++
	}
	switch r.Winner {
	case "cli":
		t.cliWins++
	case "launcher":
		t.launcherWins++
	}
	if r.CLILost {
		t.cliLost++
	}
	if r.LauncherLost {
		t.launcherLost++
	}
	if !r.LauncherPosted {
		t.launcherNoPost++
	}
	if t.launcherExits == nil {
		t.launcherExits = map[int]int{}
	}
	t.launcherExits[r.LauncherExit]++
	if t.turnTokens == nil {
		t.turnTokens = map[string]int{}
	}
	t.turnTokens[r.TurnToken]++
}

func (t cliRaceTally) String() string {
	return fmt.Sprintf("%d rounds: generation 0 redeemed by the CLI %d, by codex-launch %d; second redemptions %d (CLI lost %d, codex-launch lost %d); codex-launch adopted without a POST %d; codex-launch exits %v; the CLI's racing turn used tokens %v",
		t.rounds, t.cliWins, t.launcherWins, t.double, t.cliLost, t.launcherLost, t.launcherNoPost, t.launcherExits, t.turnTokens)
}

// cliOutcomeOf is the outcome of who's first token request, "" while it is
// still held.
func cliOutcomeOf(tm *tokenmock.Server, who string) string {
	for _, r := range tm.Requests() {
		if cliRequester(r) == who {
			return r.Outcome
		}
	}
	return ""
}

func cliRaceRound(t *testing.T, env *cliEnv, v cliVersion, order string, round int) cliRaceResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, old := newDueCLIScenario(t, env, v, nil)

	var (
		wg            sync.WaitGroup
		cliRes, lRes  cliResult
		cliDone       = make(chan struct{})
		launcherDone  = make(chan struct{})
		arrivedWithin = func(g *tokenmock.Gate, d time.Duration) bool {
			select {
			case <-g.Arrived():
				return true
			case <-time.After(d):
				return false
			}
		}
	)
	startCLI := func() {
		wg.Add(1)
		go func() { defer wg.Done(); defer close(cliDone); cliRes = s.Turn(ctx, v, nil) }()
	}
	startLauncher := func() {
		wg.Add(1)
		go func() { defer wg.Done(); defer close(launcherDone); lRes = s.Launch(ctx, "refresh", "--once") }()
	}
	// waitOther holds the first request until the second side's request
	// has been answered (it redeems first), or the second side finished
	// without one, at most cliRaceHold.
	waitOther := func(other string, done <-chan struct{}) {
		wctx, wcancel := context.WithTimeout(ctx, cliRaceHold)
		defer wcancel()
		go func() {
			select {
			case <-done:
				wcancel()
			case <-wctx.Done():
			}
		}()
		if s.TM.WaitPosts(wctx, 2) != nil {
			return
		}
		for wctx.Err() == nil && cliOutcomeOf(s.TM, other) == "" {
			time.Sleep(5 * time.Millisecond)
		}
	}

	switch order {
	case "cli-first":
		gate := s.TM.Hold(1)
		startCLI()
		if !arrivedWithin(gate, 20*time.Second) {
			gate.Release()
			wg.Wait()
			t.Fatalf("round %d: the CLI never asked for a token: %s", round, cliRes)
		}
		startLauncher()
		waitOther("launcher", launcherDone)
		gate.Release()
	case "launcher-first":
		gate := s.TM.Hold(1)
		startLauncher()
		if !arrivedWithin(gate, 20*time.Second) {
			gate.Release()
			wg.Wait()
			t.Fatalf("round %d: codex-launch never asked for a token: %s", round, lRes)
		}
		startCLI()
		waitOther("cli", cliDone)
		gate.Release()
	case "both":
		// Both requests in flight at once; the winner alternates by round:
		// the side whose request is let through first redeems generation 0.
		first, second := s.TM.Hold(1), s.TM.Hold(1)
		startCLI()
		startLauncher()
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		err := s.TM.WaitPosts(wctx, 2)
		wcancel()
		if err != nil {
			first.Release()
			second.Release()
			wg.Wait()
			t.Fatalf("round %d: want both sides to ask for a token: %s\nCLI: %s\ncodex-launch: %s", round, s.postsSummary(), cliRes, lRes)
		}
		gates := map[string]*tokenmock.Gate{}
		for i, r := range s.TM.Requests()[:2] {
			gates[cliRequester(r)] = [2]*tokenmock.Gate{first, second}[i]
		}
		winner := [2]string{"cli", "launcher"}[round%2]
		loser := [2]string{"launcher", "cli"}[round%2]
		if gates[winner] == nil || gates[loser] == nil {
			first.Release()
			second.Release()
			wg.Wait()
			t.Fatalf("round %d: want one request from each side, got %s", round, s.postsSummary())
		}
		gates[winner].Release()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if cliOutcomeOf(s.TM, winner) != "" {
				break
			}
		}
		gates[loser].Release()
	}
	wg.Wait()

	res := cliRaceResult{CLIExit: cliRes.Code, LauncherExit: lRes.Code}
	for _, r := range s.TM.Requests() {
		if r.Path != tokenmock.TokenPath || r.Method != "POST" {
			continue
		}
		res.Posts++
		who := cliRequester(r)
		if who == "launcher" {
			res.LauncherPosted = true
		}
		switch r.Outcome {
		case "refreshed":
			if r.Generation == 0 {
				res.Winner = who
			}
		case "reused":
			res.Reused++
			res.DoubleSpent = true
			if who == "cli" {
				res.CLILost = true
			} else {
				res.LauncherLost = true
			}
		}
	}
	latest, _ := s.TM.Latest(s.Account)
	res.TurnToken = cliTurnToken(s.BE.Turns(), old.AccessToken, latest.AccessToken)
	desc := fmt.Sprintf("%s %s round %d: token requests [%s], CLI exit %d in %v (turn with %s token), codex-launch exit %d in %v",
		v.Version, order, round, s.postsSummary(), cliRes.Code, cliRes.Took.Round(10*time.Millisecond), res.TurnToken, lRes.Code, lRes.Took.Round(10*time.Millisecond))
	t.Log(desc)

	// No generation is redeemed more than twice (one per side), and never
	// twice by the same side.
	perGen := map[string]int{}
	for _, r := range s.TM.Requests() {
		if r.Method == "POST" {
			perGen[fmt.Sprintf("gen%d/%s", r.Generation, cliRequester(r))]++
		}
	}
	for k, n := range perGen {
		if n > 1 {
			t.Errorf("%s: %s presented the same refresh token %d times", desc, k, n)
		}
	}

	// The CLI's racing turn completed: losing the race did not cost it the
	// login.
	if cliRes.Code != 0 || !strings.Contains(cliRes.Stdout, cliBackendReply) {
		t.Errorf("%s: the CLI's turn during the race failed: %s", desc, cliRes)
	}
	// codex-launch refreshed (0) or adopted the CLI's refresh (1); a
	// permanent failure (3) is only acceptable when it lost the race, and
	// then its next pass must see the CLI's tokens (checked below).
	switch lRes.Code {
	case 0, 1:
	case 3:
		if !res.LauncherLost {
			t.Errorf("%s: codex-launch failed permanently without losing a race: %s", desc, lRes)
		}
	default:
		t.Errorf("%s: codex-launch refresh --once: %s", desc, lRes)
	}

	// The file holds the newest tokens, unspent.
	rt, at := s.FileTokens()
	if rt != latest.RefreshToken || at != latest.AccessToken {
		t.Errorf("%s: auth.json does not hold the newest tokens (generation %d)", desc, latest.Generation)
	}
	if n := s.TM.PostsFor(latest.RefreshToken); n != 0 {
		t.Errorf("%s: the newest refresh token was already presented %d times", desc, n)
	}

	// The loser recovers: codex-launch's next pass finds nothing to do.
	before := s.tokenPosts()
	again := s.Launch(ctx, "refresh", "--once")
	if again.Code != 1 {
		t.Errorf("%s: codex-launch's next pass: want exit 1 (nothing to do): %s", desc, again)
	}
	// The CLI's next turn uses the file as it is.
	next := s.Turn(ctx, v, nil)
	if next.Code != 0 || !strings.Contains(next.Stdout, cliBackendReply) {
		t.Errorf("%s: the CLI's next turn failed: %s", desc, next)
	}
	if n := s.tokenPosts() - before; n != 0 {
		t.Errorf("%s: %d token requests after the race (%s), want none", desc, n, s.postsSummary())
	}
	turns := s.BE.Turns()
	if len(turns) == 0 || turns[len(turns)-1].AuthFP != cliFingerprint(latest.AccessToken) {
		t.Errorf("%s: the next turn did not use the newest access token", desc)
	}
	if t.Failed() {
		t.Logf("CLI during the race: %s\ncodex-launch during the race: %s", cliRes, lRes)
	}
	return res
}

// cliTurnToken classifies the access tokens turns carried.
func cliTurnToken(turns []cliBackendRequest, oldToken, newToken string) string {
	seen := map[string]bool{}
	for _, tr := range turns {
		switch tr.AuthFP {
		case cliFingerprint(oldToken):
			seen["old"] = true
		case cliFingerprint(newToken):
			seen["new"] = true
		default:
			seen["other"] = true
		}
	}
	switch {
	case len(seen) == 0:
		return "no"
	case len(seen) > 1:
		return "mixed"
	}
	for k := range seen {
		return k
	}
	return ""
}
