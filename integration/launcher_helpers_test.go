package integration

// The launcher tests (launcher_*_test.go) run the built codex-launch as PID 1
// of a fresh PID namespace through the one launcher harness,
// testenv.Launch, talking to a loopback tokenmock, running scripted /bin/sh
// children that report what they saw into its Out directory.

import (
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

type launch = testenv.Launch

// newLaunch prepares a run of codex-launch as PID 1 (see testenv.NewLaunch).
func newLaunch(t *testing.T, opts tokenmock.Options) *launch {
	t.Helper()
	l := testenv.NewLaunch(t, builtLauncher(t), opts)
	l.PID1 = true
	return l
}
