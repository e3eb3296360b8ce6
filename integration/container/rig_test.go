// Package container builds the repository's Dockerfile with podman, once, and
// runs every scenario against that image: what people who use the image do
// first (run, stop, kill, health-check, mount a volume, drop capabilities).
//
// The rig, all of it local to the test machine and none of it in the image:
//   - Base images: no registry may be reachable, so the Dockerfile's FROM
//     images are local stand-ins (testdata/base-images.sh: a debootstrap of
//     bookworm plus the Go toolchain the tests run with, or plus the host's
//     node and npm), tagged with the names the FROM lines expect and labelled
//     standInLabel. They are kept in podman's storage between runs and made
//     again when missing; an image of that name without the label (a real
//     one) is used as it is.
//   - testdata/runc-no-rlimits as the OCI runtime (see its comment).
//   - Builds use the host network (modules, npm packages); containers use the
//     host network to reach the loopback token mock, or none.
//   - No systemd: health-check timers are off (--health-interval disable) and
//     the tests run `podman healthcheck run` themselves.
//
// The scenarios run in parallel (they mostly wait on containers); the first
// one to ask for the image builds it.
package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

const (
	// standInLabel marks the base images this rig made.
	standInLabel = "codex-launch.test.stand-in=1"
	// imageName is the image built from the Dockerfile for this run.
	imageName = "localhost/codex-launch-test:image"
	// imageVersion is the VERSION build argument.
	imageVersion = "v0.0.0-container-test"
	// codexHome is CODEX_HOME in the image (its ENV).
	codexHome = "/home/agent/.codex"
)

var (
	rigOnce sync.Once
	rigErr  error
	// podmanBin and runtimeBin are set once the rig is ready.
	podmanBin, runtimeBin string
	// prefix names this run's containers and volumes, to remove them after.
	prefix = "codex-launch-test-" + strconv.Itoa(os.Getpid()) + "-"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if podmanBin != "" {
		cleanup()
	}
	os.Exit(code)
}

// image returns the built image's name, building it (and the base images)
// on first use; a missing prerequisite skips t, or fails it under CI.
func image(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	for _, c := range [][2]string{{"podman", "podman"}, {"buildah", "buildah"}, {"runc", "runc"}, {"debootstrap", "debootstrap"}, {"python3", "python3"}} {
		testenv.RequireCommand(t, c[0], c[1])
	}
	if _, err := exec.LookPath("npm"); err != nil {
		testenv.Unavailable(t, "the node base image stand-in copies the host's node and npm: npm not found")
	}
	rigOnce.Do(func() { rigErr = prepare() })
	if rigErr != nil {
		t.Fatalf("container test rig: %v", rigErr)
	}
	return imageName
}

func prepare() error {
	var err error
	if podmanBin, err = exec.LookPath("podman"); err != nil {
		return err
	}
	runtimeBin = filepath.Join(testenv.ModuleRoot(), "integration", "container", "testdata", "runc-no-rlimits")
	goImage, nodeImage, err := baseImages(filepath.Join(testenv.ModuleRoot(), "Dockerfile"))
	if err != nil {
		return err
	}
	missing := false
	for _, img := range []string{goImage, nodeImage} {
		if _, err := podmanOut(context.Background(), "image", "exists", img); err != nil {
			missing = true
		}
	}
	if missing {
		script := filepath.Join(testenv.ModuleRoot(), "integration", "container", "testdata", "base-images.sh")
		cmd := exec.Command("sh", script, goImage, nodeImage, standInLabel)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("making the base image stand-ins: %w: %s", err, out)
		}
	}
	// A first build on a busy machine takes many minutes (modules, npm, the
	// compile); the bound only stops a build that hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	// --format docker: the OCI format has no HEALTHCHECK.
	if out, err := podmanOut(ctx, "build", "--format", "docker", "--pull=never", "--network", "host",
		"--build-arg", "VERSION="+imageVersion, "-t", imageName, testenv.ModuleRoot()); err != nil {
		return fmt.Errorf("podman build of the Dockerfile: %w\n%s", err, out)
	}
	return nil
}

// baseImages reads the Dockerfile's FROM lines (global ARG defaults
// expanded) and returns the golang and the node image, fully qualified as
// podman stores short docker.io names.
func baseImages(dockerfile string) (goImage, nodeImage string, err error) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		return "", "", err
	}
	args := map[string]string{}
	argRe := regexp.MustCompile(`^ARG\s+(\w+)=(\S+)$`)
	varRe := regexp.MustCompile(`\$\{(\w+)\}`)
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if m := argRe.FindStringSubmatch(line); m != nil {
			if _, seen := args[m[1]]; !seen {
				args[m[1]] = m[2]
			}
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "FROM" {
			continue
		}
		name := varRe.ReplaceAllStringFunc(fields[1], func(v string) string { return args[varRe.FindStringSubmatch(v)[1]] })
		switch {
		case strings.HasPrefix(name, "golang:"):
			goImage = "docker.io/library/" + name
		case strings.HasPrefix(name, "node:"):
			nodeImage = "docker.io/library/" + name
		}
	}
	if goImage == "" || nodeImage == "" {
		return "", "", fmt.Errorf("%s: want a golang: and a node: FROM, found %q and %q", dockerfile, goImage, nodeImage)
	}
	return goImage, nodeImage, nil
}

// podmanOut runs podman with the rig's runtime; combined output.
func podmanOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, podmanBin, append([]string{"--runtime", runtimeBin}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// podman runs podman for t, bounded by two minutes. The rig is prepared
// first (image): a scenario may reach podman before it asks for the image.
func podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	image(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return podmanOut(ctx, args...)
}

func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podman(t, args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := podmanOut(ctx, "ps", "-a", "--filter", "name="+prefix, "--format", "{{.Names}}")
	for _, n := range strings.Fields(out) {
		podmanOut(ctx, "rm", "-f", "-t", "0", n)
	}
	out, _ = podmanOut(ctx, "volume", "ls", "--filter", "name="+prefix, "--format", "{{.Name}}")
	for _, n := range strings.Fields(out) {
		podmanOut(ctx, "volume", "rm", "-f", n)
	}
}

// volume creates a named volume for t, removed at its end.
func volume(t *testing.T) string {
	t.Helper()
	name := prefix + safeName(t) + "-home"
	mustPodman(t, "volume", "create", name)
	t.Cleanup(func() { podman(t, "volume", "rm", "-f", name) })
	return name
}

// safeName is t's name as podman accepts it in a container or volume name.
func safeName(t *testing.T) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9_.-]+`).ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
}

// ctr is a container started for a test.
type ctr struct {
	t    *testing.T
	name string
}

// start runs the image detached: opts before the image, cmd after it (empty:
// the image's CMD). Health-check timers are off: there is no systemd.
func start(t *testing.T, opts []string, cmd ...string) *ctr {
	t.Helper()
	img := image(t)
	c := &ctr{t: t, name: prefix + safeName(t) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)}
	args := append([]string{"run", "-d", "--name", c.name, "--pull=never", "--health-interval", "disable"}, opts...)
	args = append(append(args, img), cmd...)
	mustPodman(t, args...)
	t.Cleanup(func() { podman(t, "rm", "-f", "-t", "0", c.name) })
	return c
}

// wait returns the container's exit code once it has exited.
func (c *ctr) wait() int {
	c.t.Helper()
	out := strings.TrimSpace(mustPodman(c.t, "wait", c.name))
	code, err := strconv.Atoi(lastLine(out))
	if err != nil {
		c.t.Fatalf("podman wait %s: %q", c.name, out)
	}
	return code
}

func (c *ctr) logs() string {
	c.t.Helper()
	out, _ := podman(c.t, "logs", c.name)
	return out
}

// waitLog waits until the container's output holds s.
func (c *ctr) waitLog(s string) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.logs(), s) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("%s never printed %q; output:\n%s", c.name, s, c.logs())
}

// inspect returns the container's `podman inspect` record.
func (c *ctr) inspect() map[string]any {
	c.t.Helper()
	var recs []map[string]any
	if err := json.Unmarshal([]byte(mustPodman(c.t, "inspect", c.name)), &recs); err != nil || len(recs) != 1 {
		c.t.Fatalf("podman inspect %s: %v", c.name, err)
	}
	return recs[0]
}

func (c *ctr) running() bool {
	c.t.Helper()
	st, _ := c.inspect()["State"].(map[string]any)
	run, _ := st["Running"].(bool)
	return run
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// runOnce runs the image in the foreground and returns its exit code and
// output (podman's own diagnostics dropped).
func runOnce(t *testing.T, opts []string, cmd ...string) (int, string) {
	t.Helper()
	c := start(t, opts, cmd...)
	code := c.wait()
	return code, c.logs()
}
