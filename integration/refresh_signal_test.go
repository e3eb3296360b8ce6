package integration

// A stop signal during `refresh --once`: before the refresh token is sent it
// ends the pass at once and changes nothing; once the POST is in flight the
// answer is committed first, whatever signal comes.

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// TestRefreshOnceSignalDuringPOST: TERM, INT and HUP while the POST waits for
// its answer: the pass commits the new tokens and exits 0.
func TestRefreshOnceSignalDuringPOST(t *testing.T) {
	t.Parallel()
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	defer srv.Close()
	h := newHome(t, srv)
	h.expired("acct-1")
	gate := srv.Hold(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.launcherCmd(ctx, "refresh", "--once")
	r := startRunner(t, cmd)
	select {
	case <-gate.Arrived():
	case <-ctx.Done():
		t.Fatal("no POST arrived")
	}
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the signals land before the answer
	gate.Release()
	res := r.wait()
	if res.Code != exitRefreshed {
		t.Fatalf("exit %d after TERM/INT/HUP during the POST, want %d (answer committed); output:\n%s", res.Code, exitRefreshed, lines(res.output()))
	}
	latest, _ := srv.Latest("acct-1")
	if latest.Generation != 1 {
		t.Fatalf("mock at generation %d, want 1", latest.Generation)
	}
	h.wantTokens(latest, "after TERM during the POST")
	h.noLeak("refresh --once output", []byte(res.output()))
}

// TestRefreshOnceSignalBeforePOST: TERM while the pass waits for auth.lock
// (held by a CLI-like writer): the process ends at once by the signal, no
// POST is made, auth.json is byte-identical, and no temporary file is left.
func TestRefreshOnceSignalBeforePOST(t *testing.T) {
	t.Parallel()
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	defer srv.Close()
	h := newHome(t, srv)
	h.expired("acct-1")
	before := h.read()

	lock, err := os.OpenFile(filepath.Join(h.Dir, "auth.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.launcherCmd(ctx, "refresh", "--once")
	r := startRunner(t, cmd)
	time.Sleep(300 * time.Millisecond) // the pass is now waiting for auth.lock
	sent := time.Now()
	if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := r.wait()
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("TERM took %v to end the pass", took)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("process ended with %v (exit %d), want death by TERM; output:\n%s", cmd.ProcessState, res.Code, lines(res.output()))
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if srv.Posts() != 0 {
		t.Errorf("%d POSTs, want none", srv.Posts())
	}
	if got := h.read(); string(got) != string(before) {
		t.Error("auth.json changed")
	}
	entries, _ := os.ReadDir(h.Dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".tmp" {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
