package supervise

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/procstat"
)

// helperEnv marks a re-executed test binary: it runs one scripted role
// instead of the tests, so that process-wide settings (child subreaper,
// parent-death signal, a controlling terminal) never touch the test process.
const helperEnv = "SUPERVISE_TEST_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role))
	}
	os.Exit(m.Run())
}

// helperCmd is the test binary re-executed in role.
func helperCmd(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a race-enabled helper would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role, "GORACE=atexit_sleep_ms=0"}, env...)...)
	return cmd
}

// waitFile waits until path exists with content containing want.
func waitFile(t *testing.T, path, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never contained %q (has %q)", filepath.Base(path), want, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// procState is the state letter of pid from /proc (0 when it is gone).
func procState(pid int) byte {
	st, _ := procstat.Read(pid)
	return st.State
}

// zombieChildren lists the zombies whose parent is ppid.
func zombieChildren(ppid int) map[int]bool {
	ents, _ := os.ReadDir("/proc")
	out := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procstat.Read(pid); err == nil && st.Zombie() && st.PPid == ppid {
			out[pid] = true
		}
	}
	return out
}

func isSubreaper() bool {
	var flag int32
	err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&flag)), 0, 0, 0)
	return err == nil && flag != 0
}

// readLine reads one line from r with a timeout.
func readLine(t *testing.T, r *bufio.Reader, want string, timeout time.Duration) {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var acc strings.Builder
		for {
			line, err := r.ReadString('\n')
			acc.WriteString(line)
			if strings.Contains(line, want) || err != nil {
				got <- acc.String()
				return
			}
		}
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, want) {
			t.Fatalf("output %q lacks %q", s, want)
		}
	case <-time.After(timeout):
		t.Fatalf("no %q within %v", want, timeout)
	}
}

// killGroupOnFailure makes a failed test take the child's looping process
// group with it: left running, the group holds the test's output open and
// go test waits for it. After a passing test the group is gone already.
func killGroupOnFailure(t *testing.T, sup *Supervisor) {
	t.Cleanup(func() {
		if t.Failed() {
			unix.Kill(-sup.Pid(), unix.SIGKILL)
		}
	})
}
