package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// The database URL (with its password) and the sealing keys configure the
// launcher; they must not reach the child's environment.
func fleetChildEnvironment(t *testing.T, dbs *testenv.Databases) {
	r := newFleetRig(t, dbs, time.Hour)
	r.env["CODEX_LAUNCH_CREDENTIAL_KEYS"] = "k1:" + strings.Repeat("ab", 32)
	r.child = []string{"sh", "-c", "env > child.env; sleep 600"}
	r.start(1)
	path := filepath.Join(r.ws[0].dir, "child.env")
	waitFor(t, 10*time.Second, func() bool { b, _ := os.ReadFile(path); return len(b) > 0 })
	time.Sleep(100 * time.Millisecond)
	env, _ := os.ReadFile(path)
	for what, secret := range map[string]string{
		"the database password": r.pg.Password, "the sealing key": strings.Repeat("ab", 32),
		"CODEX_LAUNCH_CREDENTIAL_STORE": "CODEX_LAUNCH_CREDENTIAL_STORE=", "CODEX_LAUNCH_CREDENTIAL_KEYS": "CODEX_LAUNCH_CREDENTIAL_KEYS=",
	} {
		if strings.Contains(string(env), secret) {
			t.Errorf("the child's environment holds %s", what)
		}
	}
}
