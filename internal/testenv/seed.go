package testenv

import (
	"debug/elf"
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

// SeedPython is the python3 the seed should run with: the first real
// interpreter (an ELF binary) in the system directories, as in the image. A
// version manager's shell shim earlier on PATH would add a bash start per
// python call and misrepresent the seed. Empty when there is none.
func SeedPython() string {
	for _, p := range []string{"/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"} {
		if f, err := elf.Open(p); err == nil {
			f.Close()
			return p
		}
	}
	return ""
}
