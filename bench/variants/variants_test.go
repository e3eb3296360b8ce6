// Package variants holds no code: run.sh builds measurement variants of
// codex-launch with go build -overlay. This test keeps that build working,
// so that the stand-in for the PostgreSQL store (pgstore.stub) and the edit
// of the launcher follow the code they replace.
package variants

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestVariantsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds codex-launch four times")
	}
	dir := t.TempDir()
	out, err := exec.Command("sh", "run.sh", "-build", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh -build: %v\n%s", err, out)
	}
	for _, name := range []string{"shipped", "nopg", "nowait", "both"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("variant %s not built: %v", name, err)
		}
	}
	links := func(name string) bool {
		b, err := exec.Command("go", "version", "-m", filepath.Join(dir, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m %s: %v\n%s", name, err, b)
		}
		return strings.Contains(string(b), "github.com/jackc/pgx")
	}
	if !links("shipped") {
		t.Error("the shipped build does not link pgx: the nopg variant measures nothing")
	}
	if links("nopg") || links("both") {
		t.Error("a variant without the PostgreSQL driver still links pgx")
	}
}
