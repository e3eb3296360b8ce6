package testenv

import (
	"os"
	"path/filepath"
)

// SeedScript is where the seed watchdog (the bash+python script codex-launch
// replaces, run as a peer by the parity tests and the benchmarks) lives:
// CODEX_LAUNCH_SEED_SCRIPT, or else the project's reference material beside
// the repository (../shared/seed/ from the module root), where CI lays it.
func SeedScript() string {
	if p := os.Getenv("CODEX_LAUNCH_SEED_SCRIPT"); p != "" {
		return p
	}
	return filepath.Join(ModuleRoot(), "..", "shared", "seed", "codex_auth_refresh.sh")
}
