package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// TestCLILauncher runs the real CLI as codex-launch's child, as the image
// does: `codex-launch --user UID -- codex exec ...` as root, with a credential
// the CLI would refresh before its turn. The prime refreshes it before the
// child exists, the CLI's turn reaches the backend with the new access token
// and makes no token request, and codex-launch exits with the CLI's status:
// 0 for a completed turn, and the CLI's own failure code when the backend
// refuses the turn. The turn is also run with codex-launch as PID 1 of its
// own PID namespace, as in a container.
func TestCLILauncher(t *testing.T) {
	cliEachVersion(t, func(t *testing.T, env *cliEnv, v cliVersion) {
		t.Run("turn", func(t *testing.T) { cliLauncherTurn(t, env, v, false) })
		t.Run("turn-as-pid1", func(t *testing.T) { cliLauncherTurn(t, env, v, true) })
		t.Run("exit-status", func(t *testing.T) { cliLauncherExitStatus(t, env, v) })
	})
}

// cliLauncherScenario is a root-made CODEX_HOME with an expiring credential.
func cliLauncherScenario(t *testing.T, env *cliEnv, v cliVersion) (*cliScenario, tokenmock.Credential) {
	s, old := newDueCLIScenario(t, env, v, nil)
	if err := os.Chown(s.Home, cliUID, cliUID); err != nil {
		t.Fatal(err)
	}
	return s, old
}

func cliLaunchCLI(ctx context.Context, s *cliScenario, v cliVersion) cliResult {
	user := strconv.Itoa(cliUID) + ":" + strconv.Itoa(cliUID)
	return s.Launch(ctx, "--user", user, "--", v.Bin, "exec", "--skip-git-repo-check", "say hi")
}

// cliLaunchCLIAsPID1 is cliLaunchCLI with codex-launch as PID 1 of a new PID
// namespace (unshare --pid --fork --mount-proc), inside the test's network
// namespace.
func cliLaunchCLIAsPID1(ctx context.Context, t *testing.T, s *cliScenario, v cliVersion) cliResult {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare: %v", err)
	}
	user := strconv.Itoa(cliUID) + ":" + strconv.Itoa(cliUID)
	r := s.run(ctx, nil, []string{"CODEX_LAUNCH_LOG_LEVEL=debug"}, unshare, "--pid", "--fork", "--mount-proc",
		s.env.Launcher, "--user", user, "--", v.Bin, "exec", "--skip-git-repo-check", "say hi")
	s.checkNoLeak("codex-launch output", r.Stdout+r.Stderr)
	return r
}

func cliLauncherTurn(t *testing.T, env *cliEnv, v cliVersion, asPID1 bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, old := cliLauncherScenario(t, env, v)

	var r cliResult
	if asPID1 {
		r = cliLaunchCLIAsPID1(ctx, t, s, v)
	} else {
		r = cliLaunchCLI(ctx, s, v)
	}
	if r.Code != 0 || !strings.Contains(r.Stdout, cliBackendReply) {
		t.Fatalf("codex-launch -- codex exec: want exit 0 and the turn's reply: %s", r)
	}
	latest, _ := s.TM.Latest(s.Account)
	if latest.Generation != 1 || s.tokenPosts() != 1 {
		t.Fatalf("want exactly one refresh, by the prime: generation %d, token requests %s", latest.Generation, s.postsSummary())
	}
	if got := cliRequester(s.TM.Requests()[0]); got != "launcher" {
		t.Errorf("the refresh was made by the %s, want codex-launch's prime", got)
	}
	turns := s.BE.Turns()
	if len(turns) == 0 {
		t.Fatalf("the CLI's turn never reached the backend")
	}
	for _, tr := range turns {
		if tr.AuthFP != cliFingerprint(latest.AccessToken) {
			t.Errorf("turn carried token %s, want the prime's %s (old %s)", tr.AuthFP, cliFingerprint(latest.AccessToken), cliFingerprint(old.AccessToken))
		}
	}
	if rt, _ := s.FileTokens(); rt != latest.RefreshToken {
		t.Errorf("auth.json does not hold the prime's refresh token")
	}
	cliCheckOwned(t, s.Dir, cliUID)
	if testing.Verbose() {
		t.Logf("codex-launch output: %s", r)
	}
	t.Logf("CLI %s under codex-launch --user %d (PID 1: %v): exit %d in %v, token requests %s, %d turn(s) with the new token",
		v.Version, cliUID, asPID1, r.Code, r.Took.Round(time.Millisecond), s.postsSummary(), len(turns))
}

func cliLauncherExitStatus(t *testing.T, env *cliEnv, v cliVersion) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, _ := cliLauncherScenario(t, env, v)
	s.BE.FailTurns(http.StatusBadRequest)

	r := cliLaunchCLI(ctx, s, v)
	if len(s.BE.Turns()) == 0 {
		t.Fatalf("the CLI's turn never reached the backend: %s", r)
	}
	// The same CLI, same refused turn, run directly as the uid: its status is
	// what codex-launch must pass on.
	direct := s.Codex(ctx, v, cliUIDCred(), "exec", "--skip-git-repo-check", "say hi")
	if direct.Code == 0 {
		t.Fatalf("the CLI exits 0 on a refused turn; this check needs a failing status: %s", direct)
	}
	if r.Code != direct.Code {
		t.Errorf("codex-launch exited %d, the CLI exits %d on a refused turn:\n%s", r.Code, direct.Code, r)
	}
	t.Logf("refused turn: CLI %s exits %d directly and %d under codex-launch", v.Version, direct.Code, r.Code)
}
