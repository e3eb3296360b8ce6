package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/signals"
	"golang.org/x/sys/unix"
)

// The whole path a container runtime's signal takes: the launcher process
// receives it, the Forwarder rewrites it and the Supervisor delivers it.
func TestForwarderDrivesSupervisor(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	rw, err := signals.ParseRewrite("TERM:USR2,USR1:0")
	if err != nil {
		t.Fatal(err)
	}
	fwd := signals.Listen(signals.Options{Rewrite: rw})
	defer fwd.Close()
	sup, err := New(Options{StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	script := `trap 'echo hup >> "$0"' HUP; trap 'echo usr2 >> "$0"; exit 9' USR2; echo ready >> "$0"; while :; do sleep 0.01; done`
	if err := sup.Start(Spec{Argv: sh(script, log)}); err != nil {
		t.Fatal(err)
	}
	killGroupOnFailure(t, sup)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = fwd.Run(ctx, sup) }()
	waitFile(t, log, "ready", 5*time.Second)

	// HUP until the child has seen one: from then on Run is forwarding
	// (before it has the child, signals other than stops are dropped).
	self := os.Getpid()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = unix.Kill(self, unix.SIGHUP)
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "hup") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("HUP never reached the child")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = unix.Kill(self, unix.SIGUSR1) // dropped by the rewrite
	_ = unix.Kill(self, unix.SIGTERM) // a stop, sent on as USR2
	code, err := sup.Wait(context.Background())
	if err != nil || code != 9 {
		t.Fatalf("code %d, err %v; want 9 (the child's USR2 trap; 138 means USR1 was not dropped)", code, err)
	}
	b, _ := os.ReadFile(log)
	if !strings.HasPrefix(string(b), "ready\nhup\n") || !strings.HasSuffix(string(b), "hup\nusr2\n") {
		t.Fatalf("child saw %q; want ready, hup..., usr2", b)
	}
}
