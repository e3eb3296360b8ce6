package integration

// The fault matrix of docs/faults.md: `refresh --once` on a file system that
// is full, read-only, or holds an immutable auth.json, before and after the
// POST. Each fault lives in a private mount namespace (a tmpfs with size=,
// or a loop-mounted ext4 image for chattr), so nothing leaks to the host;
// the test reaches the namespace's files through /proc/PID/root and runs
// codex-launch there with nsenter. The invariant: a refresh token the
// endpoint redeemed is never lost, and never sent again.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/internal/testenv"
	"github.com/molecule-ai/codex-launch/tokenmock"
)

// mountNS is a private mount namespace held open by a sleeping process.
type mountNS struct {
	t   *testing.T
	pid int
}

func newMountNS(t *testing.T) *mountNS {
	t.Helper()
	testenv.RequireRoot(t)
	unshare := testenv.RequireCommand(t, "unshare", "util-linux")
	testenv.RequireCommand(t, "nsenter", "util-linux")
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sleep", "600")
	if err := cmd.Start(); err != nil {
		testenv.Unavailable(t, fmt.Sprintf("unshare --mount: %v", err))
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ns := &mountNS{t: t, pid: cmd.Process.Pid}
	// unshare execs sleep once the namespace is made.
	deadline := time.Now().Add(5 * time.Second)
	for {
		self, _ := os.Readlink("/proc/self/ns/mnt")
		their, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", ns.pid))
		if err == nil && their != self {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", ns.pid))
			if strings.HasSuffix(exe, "sleep") {
				return ns
			}
		}
		if time.Now().After(deadline) {
			testenv.Unavailable(t, "unshare --mount made no namespace")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// in runs argv inside the namespace and fails the test when it fails.
func (ns *mountNS) in(argv ...string) string {
	ns.t.Helper()
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(ns.pid), "-m", "--"}, argv...)...).CombinedOutput()
	if err != nil {
		ns.t.Fatalf("%v in the namespace: %v: %s", argv, err, out)
	}
	return string(out)
}

// path is p as the namespace sees it, reachable from the test.
func (ns *mountNS) path(p string) string { return fmt.Sprintf("/proc/%d/root%s", ns.pid, p) }

// wrap makes cmd run inside the namespace.
func (ns *mountNS) wrap(cmd *exec.Cmd) {
	cmd.Args = append([]string{"nsenter", "-t", strconv.Itoa(ns.pid), "-m", "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path, _ = exec.LookPath("nsenter")
}

// fill writes zeros into dir until the file system is full.
func (ns *mountNS) fill(dir string) {
	ns.t.Helper()
	// dd ends with ENOSPC: that is the point.
	_ = exec.Command("nsenter", "-t", strconv.Itoa(ns.pid), "-m", "--", "dd", "if=/dev/zero", "of="+filepath.Join(dir, "filler"), "bs=4k").Run()
	// Another inode for the status file must not be what fails first.
	if err := os.WriteFile(ns.path(filepath.Join(dir, "probe")), []byte("x"), 0o600); err == nil {
		ns.t.Fatal("the file system is not full after the fill")
	}
}

// faultRig is a CODEX_HOME on its own file system inside a namespace.
type faultRig struct {
	*home
	ns  *mountNS
	old tokenmock.Credential
}

func newFaultRig(t *testing.T, fstype string) *faultRig {
	t.Helper()
	ns := newMountNS(t)
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	t.Cleanup(srv.Close)
	h := newHome(t, srv)
	switch fstype {
	case "tmpfs":
		ns.in("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", h.Dir)
	case "ext4":
		mkfs := testenv.RequireCommand(t, "mkfs.ext4", "e2fsprogs")
		testenv.RequireCommand(t, "chattr", "e2fsprogs")
		img := filepath.Join(t.TempDir(), "home.img")
		if out, err := exec.Command("truncate", "-s", "8M", img).CombinedOutput(); err != nil {
			t.Fatalf("truncate: %v: %s", err, out)
		}
		if out, err := exec.Command(mkfs, "-q", "-F", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
		ns.in("mount", "-o", "loop", img, h.Dir)
		ns.in("chmod", "0700", h.Dir)
	}
	r := &faultRig{home: h, ns: ns}
	// Due (inside the 600 s margin), not expired: a transient failure
	// leaves a usable credential.
	r.old = srv.IssueWithExpiry("acct-1", time.Now().Add(5*time.Minute))
	r.put("auth.json", srv.AuthJSON(r.old, time.Now().Add(-time.Hour)))
	return r
}

func (r *faultRig) put(name string, data []byte) {
	r.t.Helper()
	if err := os.WriteFile(r.ns.path(filepath.Join(r.Dir, name)), data, 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func (r *faultRig) get(name string) []byte {
	b, _ := os.ReadFile(r.ns.path(filepath.Join(r.Dir, name)))
	return b
}

// cmd prepares codex-launch with args inside the namespace.
func (r *faultRig) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := r.launcherCmd(ctx, args...)
	r.ns.wrap(c)
	return c
}

func (r *faultRig) once() run {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := finish(r.t, r.cmd(ctx, "refresh", "--once"))
	r.noLeak("refresh --once output", []byte(res.output()))
	return res
}

// onceHeld runs refresh --once with the POST held at the mock until during
// has run: the fault lands between the server's answer being ready and the
// commit.
func (r *faultRig) onceHeld(during func()) run {
	r.t.Helper()
	gate := r.Srv.Hold(1)
	defer gate.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := r.cmd(ctx, "refresh", "--once")
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-gate.Arrived():
	case <-time.After(20 * time.Second):
		r.t.Fatal("the POST never came")
	}
	during()
	gate.Release()
	err := c.Wait()
	res := run{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	r.noLeak("refresh --once output", []byte(res.output()))
	return res
}

func (r *faultRig) health() (int, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := finish(r.t, r.cmd(ctx, "health"))
	r.t.Logf("health: %d %s", res.Code, strings.TrimSpace(res.output()))
	return res.Code, strings.TrimSpace(res.output())
}

// holdsOld and holdsLatest tell which credential auth.json holds.
func (r *faultRig) holds(c tokenmock.Credential) bool {
	got, ok := fileTokens(r.get("auth.json"))
	return ok && sameTokens(got, c)
}

func (r *faultRig) latest() tokenmock.Credential {
	c, _ := r.Srv.Latest("acct-1")
	return c
}

// spentAndLost: the endpoint redeemed the file's token, and no file in
// CODEX_HOME holds the answer.
func (r *faultRig) spentAndLost() bool {
	if !r.Srv.Spent(r.old.RefreshToken) {
		return false
	}
	latest := r.latest()
	for _, name := range []string{"auth.json", authwatch.RescueFileName} {
		if got, ok := fileTokens(r.get(name)); ok && sameTokens(got, latest) {
			return false
		}
	}
	return true
}

func wantRun(t *testing.T, what string, res run, code int, substr string) {
	t.Helper()
	t.Logf("%s: exit %d: %s", what, res.Code, strings.TrimSpace(res.output()))
	if res.Code != code || !strings.Contains(res.output(), substr) {
		t.Fatalf("%s: exit %d, want %d with %q; output:\n%s", what, res.Code, code, substr, lines(res.output()))
	}
}

func TestFaultENOSPCBeforeThePost(t *testing.T) {
	r := newFaultRig(t, "tmpfs")
	r.ns.fill(r.Dir)
	wantRun(t, "refresh --once on a full disk", r.once(), exitTransient, "reserving")
	if r.Srv.Posts() != 0 || !r.holds(r.old) || r.spentAndLost() {
		t.Fatalf("POSTs %d, auth.json holds the old credential %v", r.Srv.Posts(), r.holds(r.old))
	}
	if code, out := r.health(); code != 1 {
		t.Fatalf("health on a full disk: %d %q", code, out)
	}
	// Space returns: the next run refreshes.
	r.ns.in("rm", filepath.Join(r.Dir, "filler"))
	wantRun(t, "refresh --once once space returned", r.once(), exitRefreshed, "")
	if !r.holds(r.latest()) {
		t.Fatal("auth.json does not hold the new credential")
	}
}

func TestFaultENOSPCAfterThePost(t *testing.T) {
	r := newFaultRig(t, "tmpfs")
	res := r.onceHeld(func() { r.ns.fill(r.Dir) })
	// The space reserved before the POST takes the answer.
	wantRun(t, "refresh --once when the disk fills during the POST", res, exitRefreshed, "")
	if !r.holds(r.latest()) || r.spentAndLost() {
		t.Fatal("auth.json does not hold the new credential")
	}
}

func TestFaultReadOnlyFileSystem(t *testing.T) {
	r := newFaultRig(t, "tmpfs")
	r.ns.in("mount", "-o", "remount,ro", r.Dir)
	wantRun(t, "refresh --once on a read-only file system", r.once(), exitTransient, "read-only file system")
	if r.Srv.Posts() != 0 || !r.holds(r.old) {
		t.Fatalf("POSTs %d, auth.json holds the old credential %v", r.Srv.Posts(), r.holds(r.old))
	}
	if code, out := r.health(); code != 1 {
		t.Fatalf("health on a read-only file system: %d %q", code, out)
	}
}

func TestFaultImmutableAuthJSON(t *testing.T) {
	r := newFaultRig(t, "ext4")
	auth := filepath.Join(r.Dir, "auth.json")
	r.ns.in("chattr", "+i", auth)
	defer exec.Command("nsenter", "-t", strconv.Itoa(r.ns.pid), "-m", "--", "chattr", "-i", auth).Run()
	wantRun(t, "refresh --once with an immutable auth.json", r.once(), exitTransient, "immutable")
	if r.Srv.Posts() != 0 || !r.holds(r.old) {
		t.Fatalf("POSTs %d, auth.json holds the old credential %v", r.Srv.Posts(), r.holds(r.old))
	}
	if code, out := r.health(); code != 1 || !strings.Contains(out, "immutable") {
		t.Fatalf("health with an immutable auth.json: %d %q", code, out)
	}
}

func TestFaultImmutableAfterThePost(t *testing.T) {
	r := newFaultRig(t, "ext4")
	auth := filepath.Join(r.Dir, "auth.json")
	defer exec.Command("nsenter", "-t", strconv.Itoa(r.ns.pid), "-m", "--", "chattr", "-i", auth).Run()
	res := r.onceHeld(func() { r.ns.in("chattr", "+i", auth) })
	wantRun(t, "refresh --once when auth.json turns immutable during the POST", res, exitTransient, "refreshed, not yet written")
	if r.Srv.Posts() != 1 || !r.holds(r.old) || r.spentAndLost() {
		t.Fatalf("POSTs %d; the answer must be in %s", r.Srv.Posts(), authwatch.RescueFileName)
	}
	if st, err := os.Stat(r.ns.path(filepath.Join(r.Dir, authwatch.RescueFileName))); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("rescue file: %v %v", st, err)
	}
	if code, out := r.health(); code != 1 || !strings.Contains(out, "not yet written") {
		t.Fatalf("health with a rescued answer: %d %q", code, out)
	}
	// Still immutable: the next run must not send the spent token.
	wantRun(t, "refresh --once while still immutable", r.once(), exitTransient, "not yet written")
	r.ns.in("chattr", "-i", auth)
	wantRun(t, "refresh --once once auth.json is writable", r.once(), exitRefreshed, "")
	if r.Srv.Posts() != 1 {
		t.Fatalf("%d POSTs: a spent refresh token was sent again", r.Srv.Posts())
	}
	if !r.holds(r.latest()) {
		t.Fatal("auth.json does not hold the rescued credential")
	}
	if _, err := os.Stat(r.ns.path(filepath.Join(r.Dir, authwatch.RescueFileName))); err == nil {
		t.Fatal("the rescue file is still there")
	}
	if code, out := r.health(); code != 0 {
		t.Fatalf("health after the rescue was written: %d %q", code, out)
	}
}

// TestFaultUnreadableAuthJSON: auth.json root's and 0600 while codex-launch
// runs as another user: not absent, named, and unhealthy.
func TestFaultUnreadableAuthJSON(t *testing.T) {
	r := newFaultRig(t, "tmpfs")
	for _, d := range []string{filepath.Dir(filepath.Dir(r.Dir)), filepath.Dir(r.Dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.ns.in("chown", strconv.Itoa(nobodyID)+":"+strconv.Itoa(nobodyID), r.Dir)
	c := r.launcherCmd(context.Background(), "refresh", "--once")
	id := strconv.Itoa(nobodyID)
	c.Args = append([]string{"nsenter", "-t", strconv.Itoa(r.ns.pid), "-m", "-S", id, "-G", id, "--", c.Path}, c.Args[1:]...)
	c.Path, _ = exec.LookPath("nsenter")
	res := finish(t, c)
	wantRun(t, "refresh --once as another user", res, exitTransient, "mode 0600")
	if r.Srv.Posts() != 0 || !r.holds(r.old) {
		t.Fatal("a POST, or auth.json changed")
	}
	if code, out := r.health(); code != 1 || !strings.Contains(out, "uid 0") {
		t.Fatalf("health: %d %q", code, out)
	}
}

// TestFaultEndpointAnswers: the endpoint's transient answers leave the
// credential as it was, its token unspent, and health 0 while the access
// token is still valid (the watchdog retries).
func TestFaultEndpointAnswers(t *testing.T) {
	for _, c := range []struct {
		name string
		a    tokenmock.Answer
		env  map[string]string
	}{
		{"403 HTML page", tokenmock.Answer{Status: 403, Body: "<html><title>Just a moment...</title></html>", Header: map[string][]string{"Content-Type": {"text/html"}}}, nil},
		{"429", tokenmock.RetryAfter(7), nil},
		{"503", tokenmock.Error(503, "unavailable"), nil},
		{"hang", tokenmock.Answer{Hang: true}, map[string]string{"CODEX_LAUNCH_REFRESH_TIMEOUT": "1s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
			defer srv.Close()
			h := newHome(t, srv)
			for k, v := range c.env {
				h.Env[k] = v
			}
			old := srv.IssueWithExpiry("acct-1", time.Now().Add(5*time.Minute))
			before := srv.AuthJSON(old, time.Now().Add(-time.Hour))
			h.write(before)
			srv.Script(c.a)
			if r := h.once(); r.Code != exitTransient {
				t.Fatalf("exit %d, want %d: %s", r.Code, exitTransient, lines(r.output()))
			}
			if !bytes.Equal(h.read(), before) || srv.Spent(old.RefreshToken) {
				t.Fatal("auth.json changed, or its refresh token was spent")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if r := finish(t, h.launcherCmd(ctx, "health")); r.Code != 0 {
				t.Fatalf("health %d: %s", r.Code, r.output())
			}
		})
	}
}
