package integration

// This test reads the Dockerfile and runs what it declares without a
// container engine: the build line (with its flags) produces the binary, the
// codex-launch smoke checks run against it, the HEALTHCHECK command and the
// ENTRYPOINT (with a trivial CMD) run with the image's ENV. The image itself,
// built and run by podman, is tested in integration/container.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// instruction is one Dockerfile instruction, continuations joined.
type instruction struct {
	Stage int    // index of the FROM it belongs to
	Cmd   string // upper case: RUN, ENV, ...
	Args  string
}

type dockerfile struct {
	Instructions []instruction
	Stages       []string // the FROM arguments
}

func parseDockerfile(t testing.TB, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	stage := -1
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
			df.Stages = append(df.Stages, args)
		}
		df.Instructions = append(df.Instructions, instruction{Stage: stage, Cmd: cmd, Args: strings.TrimSpace(args)})
	}
	for _, raw := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, also inside a continued instruction
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return df
}

// final lists the instructions of the last stage with the given command.
func (d dockerfile) final(cmd string) []instruction {
	var out []instruction
	for _, in := range d.Instructions {
		if in.Stage == len(d.Stages)-1 && in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// env is the final stage's ENV, in KEY=VALUE form.
func (d dockerfile) env(t testing.TB) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range d.final("ENV") {
		for _, kv := range strings.Fields(in.Args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("ENV %q: only the KEY=VALUE form is understood here", in.Args)
			}
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// execForm parses the JSON (exec) form of CMD, ENTRYPOINT or HEALTHCHECK CMD.
func execForm(t testing.TB, what, args string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("%s %s: want the JSON exec form (a signal-proof PID 1 needs it): %v", what, args, err)
	}
	return argv
}

func loadDockerfile(t testing.TB) dockerfile {
	return parseDockerfile(t, filepath.Join(testenv.ModuleRoot(), "Dockerfile"))
}

// The binary built with the Dockerfile's own build line, once.
var dockerBuild struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

const dockerTestVersion = "v0.0.0-dockerfile-test"

// runFlags matches the flags that open a RUN instruction.
var runFlags = regexp.MustCompile(`^(\s*--[a-z-]+=\S+)+`)

func dockerfileBinary(t *testing.T) string {
	t.Helper()
	df := loadDockerfile(t)
	var build string
	for _, in := range df.Instructions {
		if in.Stage == 0 && in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			// RUN's own flags (--mount=...) are the builder's, not the shell's.
			build = strings.TrimSpace(runFlags.ReplaceAllString(in.Args, ""))
		}
	}
	if build == "" {
		t.Fatal("no go build RUN in the build stage")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=${VERSION}", "./cmd/codex-launch"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build line lacks %q: %s", want, build)
		}
	}
	dockerBuild.once.Do(func() {
		dir, err := os.MkdirTemp(scratchDir, "dockerfile-")
		if err != nil {
			dockerBuild.err = err
			return
		}
		os.Chmod(dir, 0o755)
		dockerBuild.dir = dir
		// The build runs in a copy of the build context: the repository
		// minus what .dockerignore excludes, as `COPY . .` sees it.
		src := filepath.Join(dir, "src")
		if err := copyBuildContext(testenv.ModuleRoot(), src); err != nil {
			dockerBuild.err = err
			return
		}
		// ARG VERSION reaches RUN as an environment variable, as in docker build.
		cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(build, "/out/", dir+"/"))
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "VERSION="+dockerTestVersion)
		dockerBuild.out, dockerBuild.err = cmd.CombinedOutput()
	})
	if dockerBuild.err != nil {
		t.Fatalf("the Dockerfile's build line: %v\n%s", dockerBuild.err, dockerBuild.out)
	}
	return filepath.Join(dockerBuild.dir, "codex-launch")
}

// copyBuildContext copies root to dst without what .dockerignore excludes.
// Only the forms this repository's .dockerignore uses are understood: one
// pattern per line, matched (filepath.Match) against the path relative to the
// context root, a leading "/" ignored; an excluded directory takes its
// contents with it.
func copyBuildContext(root, dst string) error {
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return err
	}
	var patterns []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return errors.New(".dockerignore exceptions (!) are not understood by this test")
		}
		patterns = append(patterns, strings.TrimPrefix(line, "/"))
	}
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, rel); ok {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil // links and the like: the build needs none
	})
}

func TestDockerfileBuildsAStaticStrippedBinary(t *testing.T) {
	bin := dockerfileBinary(t)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), dockerTestVersion) {
		t.Errorf("--version = %q, %v; want the VERSION build argument", out, err)
	}
	if err := testenv.StaticStripped(bin); err != nil {
		t.Error(err)
	}
	data, _ := os.ReadFile(bin)
	if bytes.Contains(data, []byte(dockerBuild.dir)) {
		t.Error("the binary holds the build directory: not -trimpath")
	}
}

func TestDockerfileImage(t *testing.T) {
	df := loadDockerfile(t)
	if len(df.Stages) < 2 || !strings.HasPrefix(df.Stages[0], "golang:") {
		t.Errorf("stages %q: want a golang builder, then the image", df.Stages)
	}
	all := ""
	for _, in := range df.final("RUN") {
		all += in.Args + "\n"
	}
	if !regexp.MustCompile(`npm install -g "?@openai/codex@\$\{CODEX_VERSION\}`).MatchString(all) {
		t.Errorf("the Codex CLI is not installed from the pinned CODEX_VERSION:\n%s", all)
	}
	pinned := false
	for _, in := range df.final("ARG") {
		if regexp.MustCompile(`^CODEX_VERSION=\d+\.\d+\.\d+$`).MatchString(in.Args) {
			pinned = true
		}
	}
	if !pinned {
		t.Error("CODEX_VERSION is not pinned to an exact release")
	}
	if !strings.Contains(all, "useradd --uid 1000 --gid agent") || !strings.Contains(all, "groupadd --gid 1000 agent") {
		t.Error("no user agent with uid 1000")
	}
	env := df.env(t)
	if env["CODEX_LAUNCH_USER"] != "agent" || env["CODEX_HOME"] != "/home/agent/.codex" {
		t.Errorf("ENV %v: want codex-launch to drop to agent and CODEX_HOME in its home", env)
	}
	if ep := df.final("ENTRYPOINT"); len(ep) != 1 || strings.Join(execForm(t, "ENTRYPOINT", ep[0].Args), " ") != "codex-launch --" {
		t.Errorf("ENTRYPOINT %v, want [\"codex-launch\", \"--\"]", ep)
	}
	if cmd := df.final("CMD"); len(cmd) != 1 {
		t.Errorf("CMD %v: want one", cmd)
	} else {
		execForm(t, "CMD", cmd[0].Args)
	}
}

// smokeRuns are the final stage's RUN instructions that check codex-launch.
func smokeRuns(t *testing.T) []string {
	var smoke []string
	for _, in := range loadDockerfile(t).final("RUN") {
		if strings.Contains(in.Args, "codex-launch") {
			smoke = append(smoke, in.Args)
		}
	}
	joined := strings.Join(smoke, "\n")
	if !strings.Contains(joined, "codex-launch --version") || !strings.Contains(joined, "codex-launch refresh --once") {
		t.Fatalf("smoke checks %q: want --version and refresh --once", smoke)
	}
	return smoke
}

// runSmoke runs one RUN line as docker build would (/bin/sh -c), with bin as
// the codex-launch on PATH.
func runSmoke(binDir, line string) ([]byte, error) {
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env = []string{"PATH=" + binDir + ":/usr/local/bin:/usr/bin:/bin", "HOME=/root", "NO_PROXY=*"}
	cmd.Dir = binDir
	return cmd.CombinedOutput()
}

func TestDockerfileSmokeChecks(t *testing.T) {
	bin := dockerfileBinary(t)
	for _, line := range smokeRuns(t) {
		if out, err := runSmoke(filepath.Dir(bin), line); err != nil {
			t.Errorf("smoke check failed against the built binary: %s: %v\n%s", line, err, out)
		}
	}
	// The checks can fail: a binary whose pass exits 0, or 2, or that is
	// missing, breaks the build.
	for _, fake := range []string{"exit 0", "exit 2", "exit 127"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "codex-launch"), []byte("#!/bin/sh\n"+fake+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		failed := false
		for _, line := range smokeRuns(t) {
			if _, err := runSmoke(dir, line); err != nil {
				failed = true
			}
		}
		if !failed {
			t.Errorf("a codex-launch that does %q passes every smoke check", fake)
		}
	}
}

// imageLaunch is a launch whose environment is the image's ENV (CODEX_HOME
// moved into the test's directory) and whose binary is the Dockerfile's.
func imageLaunch(t *testing.T) (*launch, []string, []string) {
	df := loadDockerfile(t)
	bin := dockerfileBinary(t)
	l := newLaunch(t, tokenmock.Options{})
	for k, v := range df.env(t) {
		l.Env[k] = v
	}
	l.Env["CODEX_HOME"] = l.CodexHome
	if user := l.Env["CODEX_LAUNCH_USER"]; user != "" {
		if _, err := exec.Command("id", "-u", user).Output(); err != nil {
			// This machine has no such user: drop to nobody instead, which
			// proves the same path (lookup, chown, drop).
			t.Logf("no user %q here; dropping to 65534 instead", user)
			l.Env["CODEX_LAUNCH_USER"] = "65534:65534"
		}
	}
	hc := df.final("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("HEALTHCHECK: %v, want one", hc)
	}
	_, hcArgs, ok := strings.Cut(hc[0].Args, "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %s: no CMD", hc[0].Args)
	}
	health := execForm(t, "HEALTHCHECK CMD", hcArgs)
	ep := execForm(t, "ENTRYPOINT", df.final("ENTRYPOINT")[0].Args)
	// The Dockerfile's binary stands where the image has it: first on PATH.
	l.Env["PATH"] = filepath.Dir(bin) + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	return l, ep, health
}

// startImage runs ENTRYPOINT + cmd as PID 1, as docker run would.
func startImage(l *launch, entrypoint, cmd []string) {
	l.T.Helper()
	argv := append(append([]string{}, entrypoint...), cmd...)
	l.StartCommand(exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", "/usr/bin/env"}, argv...)...))
}

func TestDockerfileEntrypoint(t *testing.T) {
	l, ep, _ := imageLaunch(t)
	// env runs the first codex-launch on PATH, as docker resolves ENTRYPOINT;
	// as PID 1 it is execed by env, keeping pid 1.
	startImage(l, ep, []string{"/bin/sh", "-c", `id -u > "$OUT/uid"; exit 3`})
	if code := l.Wait(30 * time.Second); code != 3 {
		t.Fatalf("ENTRYPOINT + CMD: exit %d, want the child's 3; output:\n%s", code, l.Output.String())
	}
	if uid := strings.TrimSpace(l.OutFile("uid")); uid == "0" || uid == "" {
		t.Errorf("the child ran as uid %q: CODEX_LAUNCH_USER was not applied", uid)
	}
	if !strings.Contains(l.Output.String(), "boot") {
		t.Errorf("no boot line from codex-launch:\n%s", l.Output.String())
	}
}

func TestDockerfileHealthcheck(t *testing.T) {
	l, ep, health := imageLaunch(t)
	run := func() (int, string) {
		cmd := exec.Command("/usr/bin/env", health...)
		cmd.Env = l.Environ()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run(); code != 1 {
		t.Errorf("HEALTHCHECK before any credential: %d %q, want 1", code, out)
	}
	fresh := l.Mock.IssueWithExpiry("acct-docker", time.Now().Add(240*time.Hour))
	l.Env["CODEX_AUTH_JSON"] = string(testenv.AuthJSON(fresh, time.Now()))
	// Beside the running launcher (here: as its child) the check passes.
	script := l.Script("hc.sh", strings.Join(quoteAll(health), " ")+` > "$OUT/health"`)
	startImage(l, ep, []string{script})
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("HEALTHCHECK beside the launcher: exit %d, said %q; output:\n%s", code, l.OutFile("health"), l.Output.String())
	}
	if !strings.HasPrefix(l.OutFile("health"), "healthy") {
		t.Errorf("health said %q", l.OutFile("health"))
	}
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}
