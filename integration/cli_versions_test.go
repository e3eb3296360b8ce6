package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// TestCLIVersionsCoverImage: the CLI version the image installs
// (Dockerfile, ARG CODEX_VERSION) is one of the versions the real-CLI tests
// run, so a bump of the image's pin cannot skip the compatibility proofs.
func TestCLIVersionsCoverImage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	m := regexp.MustCompile(`(?m)^ARG CODEX_VERSION=(\S+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("Dockerfile has no ARG CODEX_VERSION=...: the image's CLI pin cannot be checked")
	}
	pinned := pinnedCLIVersions(t)
	if !slices.Contains(pinned, string(m[1])) {
		t.Errorf("the image pins @openai/codex %s, but integration/testdata/cli/versions lists %v: add it there", m[1], pinned)
	}
}
