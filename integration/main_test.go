package integration

// The package's one TestMain: it builds the codex-launch binary once, as the
// image does (static, -trimpath), for every test file of the package, in a
// scratch directory that it removes after the run.

import (
	"fmt"
	"os"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

var (
	// scratchDir holds what the package builds once for all its tests; it is
	// 0755 and removed after the run.
	scratchDir string
	// launcherPath is the built codex-launch binary ("" when the build failed).
	launcherPath string
	// launcherErr says why the build failed; tests that need the binary fail
	// with it through builtLauncher, the others still run.
	launcherErr error
)

func TestMain(m *testing.M) {
	var err error
	scratchDir, err = os.MkdirTemp("", "codex-launch-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		os.Exit(2)
	}
	// 0755 so that tests running the binary as an unprivileged user can reach it.
	if err := os.Chmod(scratchDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "integration: chmod:", err)
		os.Exit(2)
	}
	launcherPath, launcherErr = testenv.BuildLauncher(scratchDir)
	code := m.Run()
	os.RemoveAll(scratchDir)
	os.Exit(code)
}

// builtLauncher returns launcherPath, or fails t with the build error.
func builtLauncher(t testing.TB) string {
	t.Helper()
	if launcherErr != nil {
		t.Fatalf("building codex-launch: %v", launcherErr)
	}
	return launcherPath
}
