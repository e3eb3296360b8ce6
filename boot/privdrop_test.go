package boot

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// The drop changes the whole process, so it runs in a child: this test binary
// re-executed with BOOT_TEST_DROP set.
func TestMain(m *testing.M) {
	if os.Getenv("BOOT_TEST_CAPS") != "" {
		fmt.Println("check:", CheckDropCapabilities(&User{Name: "agent", UID: 4321, GID: 4321}))
		os.Exit(0)
	}
	if spec := os.Getenv("BOOT_TEST_DROP"); spec != "" {
		var u User
		fmt.Sscanf(spec, "%d:%d", &u.UID, &u.GID)
		u.Groups = []int{u.GID, 4242}
		if err := DropPrivileges(&u); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		groups, _ := os.Getgroups()
		status, _ := os.ReadFile("/proc/self/status")
		var ids []string
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "Gid:") {
				ids = append(ids, strings.Join(strings.Fields(l), " "))
			}
		}
		// Every thread must have dropped, not just the one that called setuid.
		threads, _ := os.ReadDir("/proc/self/task")
		for _, th := range threads {
			st, _ := os.ReadFile("/proc/self/task/" + th.Name() + "/status")
			if !strings.Contains(string(st), fmt.Sprintf("\nUid:\t%d\t%d\t%d\t%d\n", u.UID, u.UID, u.UID, u.UID)) {
				fmt.Println("thread", th.Name(), "kept another uid")
				os.Exit(1)
			}
		}
		fmt.Println(strings.Join(ids, ";"), groups)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestDropPrivileges(t *testing.T) {
	testenv.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BOOT_TEST_DROP=4321:4322")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := "Uid: 4321 4321 4321 4321;Gid: 4322 4322 4322 4322 [4242 4322]"
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("after the drop: %q, want %q", strings.TrimSpace(string(out)), want)
	}
}

func TestDropPrivilegesNoop(t *testing.T) {
	if err := DropPrivileges(nil); err != nil {
		t.Error(err)
	}
	self := &User{UID: os.Getuid(), GID: os.Getgid()}
	if err := DropPrivileges(self); err != nil {
		t.Errorf("dropping to the current user: %v", err)
	}
}

func TestDropPrivilegesNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		// Become unprivileged first, in a child, then ask for another user.
		bin, dir := copyTestBinary(t)
		cmd := exec.Command(bin, "-test.run=^TestDropPrivilegesNotRoot$", "-test.v")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "BOOT_TEST_UNPRIVILEGED=1")
		cmd.SysProcAttr = unprivileged(4321, 4322)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestDropPrivilegesNotRoot") {
			t.Fatalf("child did not run the check: %s", out)
		}
		return
	}
	err := DropPrivileges(&User{Name: "other", UID: os.Getuid() + 1, GID: os.Getgid()})
	if !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "other") {
		t.Fatalf("err = %v, want ErrNotRoot naming the user", err)
	}
	// The same user in another group (Kubernetes runAsUser without
	// runAsGroup): accepted, the group kept, and reported.
	same := &User{Name: "me", UID: os.Getuid(), GID: os.Getgid() + 1}
	if err := DropPrivileges(same); err != nil {
		t.Errorf("same uid, other gid: %v", err)
	}
	if !SameUserOtherGroup(same) || os.Getegid() == same.GID {
		t.Error("the group mismatch is not reported, or the group changed")
	}
}

// copyTestBinary copies this test binary where an unprivileged user can run
// it (the build directory is root-only) and returns it and its directory.
func copyTestBinary(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "boot.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// testPrepareHomeAsNobody re-runs TestPrepareHomeWithoutRootWarnsOnce as uid 65534.
func testPrepareHomeAsNobody(t *testing.T) {
	bin, dir := copyTestBinary(t)
	cmd := exec.Command(bin, "-test.run=^TestPrepareHomeWithoutRootWarnsOnce$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.SysProcAttr = unprivileged(65534, 65534)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPrepareHomeWithoutRootWarnsOnce") {
		t.Fatalf("%v:\n%s", err, out)
	}
}

// Root without CHOWN, DAC_OVERRIDE, SETUID and SETGID (--cap-drop ALL)
// is refused before anything is touched, with an error naming them.
func TestCheckDropCapabilities(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireCommand(t, "setpriv", "util-linux")
	run := func(args ...string) string {
		cmd := exec.Command(setpriv, append(args, os.Args[0], "-test.run=^$")...)
		cmd.Env = append(os.Environ(), "BOOT_TEST_CAPS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run("--bounding-set", "-chown,-dac_override,-setuid,-setgid", "--"); !strings.Contains(out, "lacks capabilities CHOWN, DAC_OVERRIDE, SETUID, SETGID") ||
		!strings.Contains(out, "--cap-add CHOWN,DAC_OVERRIDE,SETUID,SETGID") || !strings.Contains(out, "--user 4321") {
		t.Errorf("without the three: %s", out)
	}
	if out := run("--bounding-set", "-setgid", "--"); !strings.Contains(out, "lacks capabilities SETGID,") {
		t.Errorf("without SETGID: %s", out)
	}
	if out := run("--"); out != "check: <nil>" {
		t.Errorf("with every capability: %s", out)
	}
	if err := CheckDropCapabilities(nil); err != nil {
		t.Error(err)
	}
}
