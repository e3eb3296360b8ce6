package authwatch

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv makes the test binary a child that commits auth.json in a
// loop (see TestMain) until it is killed.
const crashChildEnv = "AUTHWATCH_TEST_CRASH_CHILD_HOME"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

var crashExp = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func crashCreds() (a, b cred) { return newCred(1, crashExp), newCred(2, crashExp) }

// crashChild flips auth.json between credential A and B through the full
// refresh path (auth.lock, re-read, temp file, auth.json.lock, rename, dir
// fsync), forever.
func crashChild(dir string) int {
	a, b := crashCreds()
	fa, _ := ParseAuthFile(a.file(crashExp))
	fb, _ := ParseAuthFile(b.file(crashExp))
	st := NewFileStore(Home{Dir: dir, LockTimeout: 5 * time.Second})
	for i := 0; ; i++ {
		err := st.Update(context.Background(), func(_ context.Context, cur *AuthFile) (*AuthFile, error) {
			if cur != nil && cur.Tokens().RefreshToken == a.Refresh {
				return fb, nil
			}
			return fa, nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "commit:", err)
			return 1
		}
		if i == 0 {
			fmt.Println("ready")
		}
	}
}

// TestCommitCrashSafety SIGKILLs a committing process at random moments,
// hundreds of times: auth.json must always parse and hold A or B, never a
// torn or empty file.
func TestCommitCrashSafety(t *testing.T) {
	runs := 200
	if testing.Short() {
		runs = 40
	}
	dir := t.TempDir()
	h := Home{Dir: dir}
	a, b := crashCreds()
	if err := os.WriteFile(h.AuthPath(), a.file(crashExp), 0o600); err != nil {
		t.Fatal(err)
	}
	seenA, seenB := 0, 0
	for i := 0; i < runs; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start committing: %q %s", line, stderr.String())
		}
		time.Sleep(time.Duration(rand.N(3000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		data, err := os.ReadFile(h.AuthPath())
		if err != nil {
			t.Fatalf("run %d: auth.json unreadable after SIGKILL: %v", i, err)
		}
		f, err := ParseAuthFile(data)
		if err != nil {
			t.Fatalf("run %d: auth.json torn after SIGKILL: %v\n%q", i, err, data)
		}
		switch f.Tokens().RefreshToken {
		case a.Refresh:
			seenA++
		case b.Refresh:
			seenB++
		default:
			t.Fatalf("run %d: auth.json holds neither credential", i)
		}
		if info, _ := os.Stat(h.AuthPath()); info.Mode().Perm() != 0o600 {
			t.Fatalf("run %d: mode %v", i, info.Mode())
		}
	}
	t.Logf("%d kills: file held A %d times, B %d times", runs, seenA, seenB)
	if seenA == 0 || seenB == 0 {
		t.Fatalf("kills never landed between commits (A %d, B %d): the test proves nothing", seenA, seenB)
	}

	// A crash can leave our temp files; once old they are cleaned, and
	// nothing else is touched.
	temps, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	old := time.Now().Add(-2 * staleTempAfter)
	for _, p := range temps {
		os.Chtimes(p, old, old)
	}
	other := filepath.Join(dir, ".auth.json.tmpXYZ") // someone else's temp file
	os.WriteFile(other, nil, 0o600)
	os.Chtimes(other, old, old)
	d, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	young, err := h.prepareTemp(d)
	if err != nil {
		t.Fatal(err)
	}
	young.discard()
	left, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	// A stashed answer is not a temporary file: the next refresh adopts it.
	left = slices.DeleteFunc(left, func(p string) bool { return filepath.Base(p) == RescueFileName })
	if len(left) != 0 {
		t.Fatalf("stale temp files left: %v", left)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal("a foreign temp file was removed")
	}
	t.Logf("%d stale temp files cleaned", len(temps))
}

func TestFreshTempFilesAreNotCleaned(t *testing.T) {
	h := testHome(t, nil)
	p := filepath.Join(h.Dir, tempPrefix+"auth.json.young"+tempSuffix)
	os.WriteFile(p, nil, 0o600)
	d, err := h.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cleanStaleTemps(d)
	if _, err := os.Stat(p); err != nil {
		t.Fatal("a young temp file (maybe another launcher's) was removed")
	}
}
