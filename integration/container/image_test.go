package container

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// The pinned Codex CLI, as the Dockerfile's ARG says.
func pinnedCLI(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ARG CODEX_VERSION=(\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Dockerfile pins no CODEX_VERSION")
	}
	return string(m[1])
}

func TestImageBuild(t *testing.T) {
	t.Parallel()
	img := image(t)
	// PID 1 is codex-launch; the CLI is the pinned release.
	code, out := runOnce(t, []string{"--network", "none"}, "sh", "-c", `echo "pid1=$(cat /proc/1/comm)"; codex --version`)
	if code != 0 || !strings.Contains(out, "pid1=codex-launch") || !strings.Contains(out, "codex-cli "+pinnedCLI(t)) {
		t.Errorf("exit %d, want 0, PID 1 codex-launch and codex-cli %s; output:\n%s", code, pinnedCLI(t), out)
	}
	// The binary in the image: static, stripped, the build's VERSION.
	name := prefix + "copy"
	mustPodman(t, "create", "--name", name, "--pull=never", img)
	t.Cleanup(func() { podman(t, "rm", "-f", name) })
	bin := filepath.Join(t.TempDir(), "codex-launch")
	mustPodman(t, "cp", name+":/usr/local/bin/codex-launch", bin)
	if err := testenv.StaticStripped(bin); err != nil {
		t.Errorf("codex-launch in the image: %v", err)
	}
	data, _ := os.ReadFile(bin)
	if !strings.Contains(string(data), imageVersion) {
		t.Errorf("codex-launch in the image does not carry the VERSION build argument %s", imageVersion)
	}
	var recs []struct {
		Config struct {
			Entrypoint []string
			Cmd        []string
		}
		Healthcheck struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(mustPodman(t, "image", "inspect", img)), &recs); err != nil || len(recs) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	cfg := recs[0].Config
	if strings.Join(cfg.Entrypoint, " ") != "codex-launch --" || strings.Join(cfg.Cmd, " ") != "codex" {
		t.Errorf("ENTRYPOINT %q CMD %q", cfg.Entrypoint, cfg.Cmd)
	}
	if !strings.Contains(strings.Join(recs[0].Healthcheck.Test, " "), "codex-launch health") {
		t.Errorf("HEALTHCHECK %q", recs[0].Healthcheck.Test)
	}
}

// The image's default command, the CLI's TUI on a terminal, keeps running:
// it finds every tool it calls (the pinned CLI exits 1 after about 11 s when
// ps is missing).
func TestImageDefaultCommand(t *testing.T) {
	t.Parallel()
	c := start(t, []string{"-t", "--network", "none", "-v", volume(t) + ":" + codexHome})
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if !c.running() {
			t.Fatalf("the default command exited (%d); output:\n%s", c.wait(), c.logs())
		}
	}
	if out := c.logs(); strings.Contains(out, "failed to invoke") || strings.Contains(out, "not found") {
		t.Errorf("the default command misses a tool:\n%s", out)
	}
	mustPodman(t, "stop", "-t", "10", c.name)
}

// credential starts a mock token endpoint and returns it with the podman
// options that seed an about-to-expire credential through CODEX_AUTH_JSON.
func credential(t *testing.T) (*tokenmock.Server, tokenmock.Credential, []string) {
	t.Helper()
	mock := tokenmock.Start(tokenmock.Options{AccessTTL: 240 * time.Hour})
	t.Cleanup(mock.Close)
	cred := mock.IssueWithExpiry("acct-image", time.Now().Add(time.Minute))
	opts := []string{"--network", "host",
		"-e", "CODEX_AUTH_JSON=" + string(mock.AuthJSON(cred, time.Now().Add(-time.Hour))),
		"-e", "CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + mock.URL}
	return mock, cred, opts
}

// latest is the newest credential the mock issued for cred's account.
func latest(t *testing.T, mock *tokenmock.Server, cred tokenmock.Credential) tokenmock.Credential {
	t.Helper()
	l, ok := mock.Latest(cred.AccountID)
	if !ok || l.Generation == 0 {
		t.Fatalf("the mock issued no refreshed credential for %s", cred.AccountID)
	}
	return l
}

// showHome is a child that prints auth.json, then the owner of everything in
// CODEX_HOME, and its own user.
const showHome = `cat "$CODEX_HOME/auth.json"; echo; find "$CODEX_HOME" -printf 'owner %u:%g %p\n'; echo "user=$(id -un)"`

func TestImageCredentialVolume(t *testing.T) {
	t.Parallel()
	mock, cred, opts := credential(t)
	opts = append(opts, "-v", volume(t)+":"+codexHome)
	code, out := runOnce(t, opts, "sh", "-c", showHome)
	if code != 0 {
		t.Fatalf("exit %d; output:\n%s", code, out)
	}
	gen1 := latest(t, mock, cred)
	// The child's first instruction already reads the refreshed credential.
	if !strings.Contains(out, gen1.RefreshToken) || strings.Contains(out, cred.RefreshToken) {
		t.Errorf("the child's first read of auth.json does not hold the refreshed credential:\n%s", out)
	}
	if !strings.Contains(out, "user=agent") {
		t.Errorf("the child does not run as agent:\n%s", out)
	}
	owners := regexp.MustCompile(`(?m)^owner (\S+) (\S+)$`).FindAllStringSubmatch(out, -1)
	if len(owners) < 2 {
		t.Fatalf("no listing of CODEX_HOME:\n%s", out)
	}
	for _, o := range owners {
		if o[1] != "agent:agent" {
			t.Errorf("%s belongs to %s, want agent:agent", o[2], o[1])
		}
	}
	// A restart with the same, now spent CODEX_AUTH_JSON keeps the volume's
	// credential: no second POST of the spent token.
	code, out = runOnce(t, opts, "sh", "-c", showHome)
	if code != 0 {
		t.Fatalf("second run: exit %d; output:\n%s", code, out)
	}
	if n := mock.PostsFor(cred.RefreshToken); n != 1 {
		t.Errorf("the spent refresh token was POSTed %d times, want 1", n)
	}
	if !strings.Contains(out, gen1.RefreshToken) {
		t.Errorf("after the restart auth.json lost the refreshed credential:\n%s", out)
	}
	if n := mock.Posts(); n != 1 {
		t.Errorf("%d token requests in two runs, want 1", n)
	}
}

// sigChild prints ready, then a line for each of HUP, USR1 and TERM (exit 7
// on TERM), polling so that the traps run promptly.
const sigChild = `trap 'echo got-HUP' HUP; trap 'echo got-USR1' USR1; trap 'echo got-TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done`

// exitCode is the container's recorded exit code.
func (c *ctr) exitCode() int {
	c.t.Helper()
	st, _ := c.inspect()["State"].(map[string]any)
	code, ok := st["ExitCode"].(float64)
	if !ok {
		c.t.Fatalf("no exit code in podman inspect %s", c.name)
	}
	return int(code)
}

// engineKilled is what podman stop says when it had to SIGKILL.
const engineKilled = "resorting to SIGKILL"

func TestImageStop(t *testing.T) {
	t.Parallel()
	t.Run("child-status", func(t *testing.T) {
		c := start(t, []string{"--network", "none"}, "sh", "-c", sigChild)
		c.waitLog("ready")
		out := mustPodman(t, "stop", "-t", "30", c.name)
		if strings.Contains(out, engineKilled) {
			t.Errorf("podman had to kill:\n%s", out)
		}
		if code := c.exitCode(); code != 7 || !strings.Contains(c.logs(), "got-TERM") {
			t.Errorf("exit %d, want the child's 7 after TERM; output:\n%s", code, c.logs())
		}
	})
	t.Run("143", func(t *testing.T) {
		c := start(t, []string{"--network", "none"}, "sh", "-c", "echo ready; exec sleep 1000")
		c.waitLog("ready")
		out := mustPodman(t, "stop", "-t", "30", c.name)
		if code := c.exitCode(); code != 143 || strings.Contains(out, engineKilled) {
			t.Errorf("exit %d, want 143 (TERM's default); podman stop said %q", code, out)
		}
	})
	t.Run("ignores-TERM", func(t *testing.T) {
		// The child and a member of its group ignore TERM; codex-launch kills
		// the group at its --stop-timeout (2 s), long before the engine would.
		c := start(t, []string{"--network", "none", "-e", "CODEX_LAUNCH_STOP_TIMEOUT=2s"},
			"sh", "-c", `trap '' TERM; sleep 1000 & echo ready; while :; do sleep 0.1; done`)
		c.waitLog("ready")
		out := mustPodman(t, "stop", "-t", "60", c.name)
		if strings.Contains(out, engineKilled) {
			t.Errorf("podman had to kill: codex-launch did not at its stop timeout:\n%s", out)
		}
		if code := c.exitCode(); code != 137 {
			t.Errorf("exit %d, want 137 (SIGKILL at the stop timeout); output:\n%s", code, c.logs())
		}
	})
	t.Run("HUP-USR1", func(t *testing.T) {
		c := start(t, []string{"--network", "none"}, "sh", "-c", sigChild)
		c.waitLog("ready")
		for _, sig := range []string{"HUP", "USR1"} {
			mustPodman(t, "kill", "-s", sig, c.name)
			c.waitLog("got-" + sig)
		}
		if !c.running() {
			t.Errorf("HUP or USR1 ended the container:\n%s", c.logs())
		}
		mustPodman(t, "stop", "-t", "30", c.name)
	})
	t.Run("zombies", func(t *testing.T) {
		// Each inner shell leaves an orphan that exits a moment later: only
		// PID 1 can reap it.
		code, out := runOnce(t, []string{"--network", "none"}, "sh", "-c",
			`for i in 1 2 3 4 5; do sh -c 'sleep 0.2 & exit 0'; done; sleep 2; ps -eo stat=,pid=,ppid=,comm=; echo listed`)
		if code != 0 || !strings.Contains(out, "listed") {
			t.Fatalf("exit %d; output:\n%s", code, out)
		}
		if z := regexp.MustCompile(`(?m)^\s*Z.*$`).FindAllString(out, -1); len(z) > 0 {
			t.Errorf("zombies left in the container: %q", z)
		}
	})
}

// healthRun runs `podman healthcheck run` and returns its exit code and the
// last health-check log entry podman inspect records.
func (c *ctr) healthRun() (ok bool, status, output string) {
	c.t.Helper()
	_, err := podman(c.t, "healthcheck", "run", c.name)
	st, _ := c.inspect()["State"].(map[string]any)
	h, _ := st["Health"].(map[string]any)
	if h == nil {
		h, _ = st["Healthcheck"].(map[string]any)
	}
	status, _ = h["Status"].(string)
	if log, _ := h["Log"].([]any); len(log) > 0 {
		last, _ := log[len(log)-1].(map[string]any)
		output, _ = last["Output"].(string)
	}
	return err == nil, status, output
}

// healthNow makes one check decide the state: the image's own HEALTHCHECK
// command, with a start period of a second and no retries (podman 4 applies
// those overrides only together with --health-cmd).
func healthNow(t *testing.T) []string {
	t.Helper()
	var recs []struct{ Healthcheck struct{ Test []string } }
	if err := json.Unmarshal([]byte(mustPodman(t, "image", "inspect", image(t))), &recs); err != nil || len(recs) != 1 {
		t.Fatalf("podman image inspect: %v", err)
	}
	test := recs[0].Healthcheck.Test
	if len(test) < 2 || test[0] != "CMD" {
		t.Fatalf("the image's HEALTHCHECK %q: want the exec form", test)
	}
	cmd, _ := json.Marshal(test[1:])
	return []string{"--health-cmd", string(cmd), "--health-start-period", "1s", "--health-retries", "1"}
}

func TestImageHealthcheck(t *testing.T) {
	t.Parallel()
	t.Run("healthy", func(t *testing.T) {
		_, _, opts := credential(t)
		c := start(t, append(append(opts, healthNow(t)...), "-v", volume(t)+":"+codexHome), "sh", "-c", "echo ready; exec sleep 1000")
		c.waitLog("ready")
		var ok bool
		var status, output string
		// The watchdog writes its status file just after the child starts.
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && !ok; time.Sleep(500 * time.Millisecond) {
			ok, status, output = c.healthRun()
		}
		if !ok || status != "healthy" {
			t.Errorf("healthcheck: ok %v, status %q, output %q; container output:\n%s", ok, status, output, c.logs())
		}
	})
	t.Run("dead", func(t *testing.T) {
		// An expired credential whose refresh token the endpoint refuses for
		// good: the login is dead, and health says why.
		mock := tokenmock.Start(tokenmock.Options{})
		t.Cleanup(mock.Close)
		cred := mock.IssueWithExpiry("acct-dead", time.Now().Add(-time.Hour))
		mock.Script(tokenmock.Error(401, "refresh_token_invalidated"))
		c := start(t, append([]string{"--network", "host", "-v", volume(t) + ":" + codexHome,
			"-e", "CODEX_AUTH_JSON=" + string(mock.AuthJSON(cred, time.Now().Add(-48*time.Hour))),
			"-e", "CODEX_REFRESH_TOKEN_URL_OVERRIDE=" + mock.URL}, healthNow(t)...), "sh", "-c", "echo ready; exec sleep 1000")
		c.waitLog("ready")
		var ok bool
		var status, output string
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && status != "unhealthy"; time.Sleep(500 * time.Millisecond) {
			ok, status, output = c.healthRun()
		}
		if ok || status != "unhealthy" {
			t.Errorf("healthcheck: ok %v, status %q, want unhealthy; container output:\n%s", ok, status, c.logs())
		}
		// The reason: the refused refresh, or the expiry it leaves behind.
		reason := strings.ToLower(output)
		if !strings.HasPrefix(reason, "unhealthy (") || !(strings.Contains(reason, "dead") || strings.Contains(reason, "refresh") || strings.Contains(reason, "expired")) {
			t.Errorf("podman inspect's health log does not say why: %q", output)
		}
	})
}

func TestImageReadOnly(t *testing.T) {
	t.Parallel()
	mock, cred, opts := credential(t)
	opts = append(opts, "--read-only", "--tmpfs", "/tmp", "-v", volume(t)+":"+codexHome)
	code, out := runOnce(t, opts, "sh", "-c", `touch /etc/probe 2>/dev/null && echo "rootfs-$((6*7))"; touch /tmp/probe && `+showHome)
	if code != 0 || strings.Contains(out, "rootfs-42") {
		t.Fatalf("exit %d (want 0, a read-only root file system); output:\n%s", code, out)
	}
	if !strings.Contains(out, latest(t, mock, cred).RefreshToken) {
		t.Errorf("auth.json does not hold the refreshed credential:\n%s", out)
	}
}

func TestImageCapabilities(t *testing.T) {
	t.Parallel()
	t.Run("drop-all", func(t *testing.T) {
		_, _, opts := credential(t)
		code, out := runOnce(t, append(opts, "--cap-drop", "ALL", "-v", volume(t)+":"+codexHome), "true")
		if code == 0 {
			t.Fatalf("root without capabilities booted; output:\n%s", out)
		}
		for _, c := range []string{"CHOWN", "DAC_OVERRIDE", "SETUID", "SETGID"} {
			if !strings.Contains(out, c) {
				t.Errorf("the error does not name %s:\n%s", c, out)
			}
		}
	})
	t.Run("the-four", func(t *testing.T) {
		// What the Kubernetes manifest grants: these four and nothing else,
		// no privilege escalation; a second boot on the same volume too, and
		// `runuser -u agent` for an exec session as the README shows.
		mock, cred, opts := credential(t)
		opts = append(opts, "--cap-drop", "ALL", "--cap-add", "CHOWN,DAC_OVERRIDE,SETUID,SETGID", "--security-opt", "no-new-privileges",
			"-v", volume(t)+":"+codexHome)
		for i := 0; i < 2; i++ {
			code, out := runOnce(t, opts, "sh", "-c", showHome)
			if code != 0 || !strings.Contains(out, "user=agent") || !strings.Contains(out, latest(t, mock, cred).RefreshToken) {
				t.Fatalf("boot %d: exit %d, want 0 as agent with the refreshed credential; output:\n%s", i+1, code, out)
			}
		}
		c := start(t, opts, "sh", "-c", "echo ready; exec sleep 1000")
		c.waitLog("ready")
		out, err := podman(t, "exec", c.name, "runuser", "-u", "agent", "--", "codex", "login", "status")
		if err != nil || !strings.Contains(out, "Logged in using ChatGPT") {
			t.Errorf("runuser -u agent -- codex login status: %v\n%s", err, out)
		}
	})
	t.Run("user-1000", func(t *testing.T) {
		mock, cred, opts := credential(t)
		code, out := runOnce(t, append(opts, "--user", "1000", "--cap-drop", "ALL", "-v", volume(t)+":"+codexHome), "sh", "-c", showHome)
		if code != 0 || !strings.Contains(out, "user=agent") {
			t.Fatalf("exit %d, want 0 as agent; output:\n%s", code, out)
		}
		if !strings.Contains(out, latest(t, mock, cred).RefreshToken) {
			t.Errorf("auth.json does not hold the refreshed credential:\n%s", out)
		}
	})
}

// The real CLI in the image, as the child, reads the credential codex-launch
// refreshed: it reports the ChatGPT login and needs no token request of its
// own; without a credential it reports none.
func TestImageRealCLI(t *testing.T) {
	t.Parallel()
	mock, cred, opts := credential(t)
	vol := volume(t)
	code, out := runOnce(t, append(opts, "-v", vol+":"+codexHome), "sh", "-c", `codex login status; echo "status=$?"; `+showHome)
	if code != 0 || !strings.Contains(out, "status=0") || !strings.Contains(out, "Logged in using ChatGPT") {
		t.Fatalf("codex login status in the image: exit %d; output:\n%s", code, out)
	}
	if !strings.Contains(out, latest(t, mock, cred).RefreshToken) || mock.Posts() != 1 {
		t.Errorf("%d token requests (want codex-launch's one); output:\n%s", mock.Posts(), out)
	}
	code, out = runOnce(t, []string{"--network", "none", "-v", vol + "-none:" + codexHome}, "codex", "login", "status")
	if code == 0 || strings.Contains(out, "Logged in") || !strings.Contains(out, "Not logged in") {
		t.Errorf("without a credential: exit %d; output:\n%s", code, out)
	}
}
