package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// The README's quick start works as written: each command of its first sh
// block runs from the repository root, for a newcomer whose home holds no
// login yet, and exits as its comment says.
func TestReadmeQuickStart(t *testing.T) {
	root := testenv.ModuleRoot()
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := quickStartLines(t, string(data))
	if len(lines) == 0 {
		t.Fatal("README.md: no commands under ## Quick start")
	}
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home)
	// A new HOME must not send the go command to the network for its caches.
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE"} {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(out)))
	}
	for _, line := range lines {
		cmdline, comment, _ := strings.Cut(line, "#")
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-c", cmdline)
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		cancel()
		code := cmd.ProcessState.ExitCode()
		// One pass over an empty home has nothing to do: 1, as documented.
		want := 0
		if strings.Contains(cmdline, "refresh --once") {
			if !strings.Contains(comment, "1 nothing to do") {
				t.Errorf("%q: the comment no longer documents exit 1", line)
			}
			want = 1
		}
		if code != want {
			t.Errorf("%s: exit %d (%v), want %d\n%s", strings.TrimSpace(cmdline), code, err, want, lastLines(out, 20))
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(home, ".codex")); len(entries) > 0 {
		t.Errorf("the read-only quick start wrote into ~/.codex: %v", entries)
	}
}

// quickStartLines returns the command lines of the first sh block under the
// "## Quick start" heading.
func quickStartLines(t *testing.T, readme string) []string {
	_, rest, ok := strings.Cut(readme, "\n## Quick start\n")
	if !ok {
		t.Fatal("README.md has no ## Quick start section")
	}
	_, block, ok := strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("## Quick start has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
