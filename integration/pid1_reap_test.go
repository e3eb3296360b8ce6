package integration

import (
	"strings"
	"testing"
	"time"
)

// pid1ReapGrandchildren: the child's child starts 100 grandchildren and exits;
// they are reparented to the init, which must reap each as it dies. The main
// child watches /proc/PID/stat of every grandchild and fails if one stays a
// zombie longer than 1 s, or is not gone within 10 s.
func pid1ReapGrandchildren(t *testing.T, h *pid1Harness, in *pid1Init) string {
	r, _ := h.start(t, in, pid1Opts{}, true, h.child, "reap", "-n", "100", "-d", "300ms", "-max-zombie", "1s")
	code := r.mustExit(20 * time.Second)
	summary := strings.TrimSpace(r.stdout())
	if code != 0 {
		t.Errorf("main child's check failed (exit %d): %s; stderr: %s", code, summary, r.stderr())
	}
	if !strings.Contains(summary, "reparented_to_init=100 left=0") {
		t.Errorf("summary %q: want all 100 reparented to the init and gone", summary)
	}
	return pid1Brief(code, summary)
}

// pid1ReapOrphans: 10,000 short-lived orphans (100 batches of 100, made by
// processes that exit at once) are all reaped: at the end no zombie and no
// other process is left in the namespace.
func pid1ReapOrphans(t *testing.T, h *pid1Harness, in *pid1Init) string {
	start := time.Now()
	// The bounds catch a hang, not slowness (bench/pid1 measures speed): a
	// loaded CI machine under the race detector may take a minute.
	r, _ := h.start(t, in, pid1Opts{}, true, h.child, "orphans", "-n", "10000", "-batch", "100", "-deadline", "90s")
	code := r.mustExit(150 * time.Second)
	summary := strings.TrimSpace(r.stdout())
	if code != 0 {
		t.Errorf("orphans not all reaped (exit %d): %s; stderr: %s", code, summary, r.stderr())
	}
	if !strings.Contains(summary, "orphans=10000 zombies_left=0 others_left=0") {
		t.Errorf("summary %q", summary)
	}
	t.Logf("%s: %s in %s", in.name, summary, time.Since(start).Round(time.Millisecond))
	return pid1Brief(code, summary)
}

func pid1Brief(code int, summary string) string {
	if code == 0 {
		return "ok: " + summary
	}
	return summary
}
