package boot

import (
	"errors"
	"sync/atomic"
	"testing"
)

// Every handed fsync runs and wait reports a failure among them; a boot that
// failed (a nil Result) leaves nothing to wait for.
func TestPendingSyncs(t *testing.T) {
	var p pendingSyncs
	var ran atomic.Int32
	boom := errors.New("fsync failed")
	p.start(func() error { ran.Add(1); return nil })
	p.start(func() error { ran.Add(1); return boom })
	if err := p.wait(); !errors.Is(err, boom) || ran.Load() != 2 {
		t.Fatalf("wait = %v after %d syncs; want the failure, after 2", err, ran.Load())
	}
	var failed *Result
	if err := failed.WaitDurable(); err != nil {
		t.Fatalf("WaitDurable of a failed boot: %v", err)
	}
}
