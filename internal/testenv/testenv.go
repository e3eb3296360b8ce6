// Package testenv gives tests what they need from the machine: a built
// codex-launch binary, Debian packages such as tini or PostgreSQL, root and
// namespaces.
//
// Tests install what they need themselves, so that `go test ./...` on a fresh
// machine (as root) runs everything and never passes by silently skipping. When
// a requirement cannot be met, the test is skipped with the reason, except
// under CI (see Strict), where a missing requirement is a failure: CI runs as
// root and must run every test.
package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// Strict reports whether a test that cannot run must fail instead of skip:
// under CI (CI=true, as .ci/run sets it; "false" and "0" count as unset).
func Strict() bool {
	switch os.Getenv("CI") {
	case "", "false", "0":
		return false
	}
	return true
}

// Unavailable skips t with why, or fails it under CI.
func Unavailable(tb testing.TB, why string) {
	tb.Helper()
	if Strict() {
		tb.Fatalf("cannot run under CI: %s", why)
	}
	tb.Skipf("skipped: %s", why)
}

// RequireRoot skips (or under CI fails) a test that needs uid 0.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Unavailable(tb, "needs root (uid 0); run the tests as root, as CI does")
	}
}

// RequirePIDNamespace makes sure `unshare --pid --fork --mount-proc` works here.
func RequirePIDNamespace(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb)
	unshare := RequireCommand(tb, "unshare", "util-linux")
	out, err := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").CombinedOutput()
	if err != nil {
		Unavailable(tb, fmt.Sprintf("unshare --pid --fork --mount-proc fails here: %v: %s", err, bytes.TrimSpace(out)))
	}
}

// RequireNetNamespace makes sure `unshare -n` works here.
func RequireNetNamespace(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb)
	unshare := RequireCommand(tb, "unshare", "util-linux")
	out, err := exec.Command(unshare, "-n", "true").CombinedOutput()
	if err != nil {
		Unavailable(tb, fmt.Sprintf("unshare -n fails here: %v: %s", err, bytes.TrimSpace(out)))
	}
}

// RequireCommand returns the path of command name, installing Debian package
// pkg first when it is missing and the test runs as root.
func RequireCommand(tb testing.TB, name, pkg string) string {
	tb.Helper()
	path, err := LookCommand(name, pkg)
	if err != nil {
		Unavailable(tb, err.Error())
	}
	return path
}

// LookCommand is RequireCommand for TestMain and benchmarks: it installs pkg
// when name is missing and it can, and says why when it cannot.
func LookCommand(name, pkg string) (string, error) {
	if path, err := lookPath(name); err == nil {
		return path, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s not found and not root, so Debian package %s cannot be installed", name, pkg)
	}
	if err := AptInstall(pkg); err != nil {
		return "", err
	}
	path, err := lookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s still not found after installing %s: %w", name, pkg, err)
	}
	return path, nil
}

// lookPath also searches the sbin directories and PostgreSQL's versioned bin
// directory, which Debian keeps off an ordinary PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}
	if matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(matches) > 0 {
		dirs = append(dirs, matches[len(matches)-1])
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// AptInstall installs Debian packages, serialised across the test processes
// that `go test ./...` runs in parallel (apt takes its own lock and fails
// instead of waiting).
func AptInstall(pkgs ...string) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "codex-launch-testenv-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("apt lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("apt lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	run := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %v: %w: %s", args, err, lastLines(out, 5))
		}
		return nil
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)
	if err := run(args...); err == nil {
		return nil
	}
	if err := run("update", "-qq"); err != nil {
		return err
	}
	return run(args...)
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte(" | ")))
}

// ModuleRoot is the directory holding go.mod, found from this source file so
// that tests in any package can build the binary.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildLauncher builds ./cmd/codex-launch into dir and returns its path. Call
// it once from TestMain: the binary is static (CGO_ENABLED=0) as in the image.
func BuildLauncher(dir string) (string, error) {
	return Build(dir, "./cmd/codex-launch", "codex-launch")
}

// Build builds the main package pkg (relative to the module root) into dir/name.
func Build(dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = ModuleRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, b)
	}
	return out, nil
}
