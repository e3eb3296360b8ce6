package supervise

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

func TestCredentialDropsPrivileges(t *testing.T) {
	testenv.RequireRoot(t)
	// The output file is opened by the launcher (as root) and handed over as
	// stdout: the unprivileged child could not reach the test's temp dir.
	out := filepath.Join(t.TempDir(), "id")
	capture := func() *os.File {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	code, _ := run(t, Options{}, Spec{
		Argv:       sh(`echo "$(id -u) $(id -g) $(id -G)"`),
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{65534, 100}},
		Dir:        "/",
		Stdout:     capture(),
	})
	b, _ := os.ReadFile(out)
	if code != 0 || strings.TrimSpace(string(b)) != "65534 65534 65534 100" {
		t.Fatalf("child ran as %q (code %d), want uid/gid 65534 with groups 65534 100", b, code)
	}
	// Without Groups the launcher's supplementary groups are dropped, not kept.
	code, _ = run(t, Options{}, Spec{
		Argv:       sh(`id -G`),
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534},
		Dir:        "/",
		Stdout:     capture(),
	})
	b, _ = os.ReadFile(out)
	if code != 0 || strings.TrimSpace(string(b)) != "65534" {
		t.Fatalf("groups %q (code %d), want only 65534", b, code)
	}
}

// As PID 1 there is no shell to resume a stopped child, so Ctrl-Z must not
// freeze the container: the child is continued at once.
func TestJobControlAsPID1ContinuesChild(t *testing.T) {
	testenv.RequirePIDNamespace(t)
	unshare, _ := exec.LookPath("unshare")
	inner := helperCmd("tty", "ARGV="+`exec "$0" -test.run='^$'`, "TICKER=1")
	cmd := exec.Command(unshare, append([]string{"--pid", "--fork", "--mount-proc", "--"}, inner.Args...)...)
	cmd.Env = inner.Env
	tm := startOnPTY(t, cmd)
	tm.expect(t, "tick", 10*time.Second)
	if _, err := tm.f.Write([]byte{26}); err != nil { // Ctrl-Z
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	ticks := tm.count("tick")
	deadline := time.Now().Add(5 * time.Second)
	for tm.count("tick") < ticks+3 {
		if time.Now().After(deadline) {
			t.Fatal("the child stayed stopped under PID 1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tm.f.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 10*time.Second); code != 130 {
		t.Fatalf("exit %d after Ctrl-C, want 130", code)
	}
}
