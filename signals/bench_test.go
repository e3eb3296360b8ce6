package signals

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nopTarget hands each forwarded signal to a channel without recording it.
type nopTarget chan struct{}

func (n nopTarget) Signal(syscall.Signal, bool) error { n <- struct{}{}; return nil }
func (n nopTarget) Stop(syscall.Signal, bool) error   { n <- struct{}{}; return nil }

// BenchmarkForward measures one signal from kill(2) on the launcher to the
// Target call, the launcher's share of forwarding latency (the kill(2) to
// the child comes on top). Run: go test -bench Forward -benchmem ./signals/
func BenchmarkForward(b *testing.B) {
	f := Listen(Options{})
	tg := make(nopTarget, 1)
	stop := runForwarderB(b, f, tg)
	defer stop()
	self := os.Getpid()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := unix.Kill(self, unix.SIGUSR1); err != nil {
			b.Fatal(err)
		}
		<-tg
	}
}
