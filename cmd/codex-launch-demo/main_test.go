package main

import (
	"os"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// The test binary plays the demo's child too, as the demo binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// TestDemo runs the whole demo against a freshly built codex-launch: it
// fails when any step the demo promises does not happen.
func TestDemo(t *testing.T) {
	bin, err := testenv.BuildLauncher(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := demo(bin, false); err != nil {
		t.Fatal(err)
	}
}
