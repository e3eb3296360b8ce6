package supervise

import (
	"golang.org/x/sys/unix"
)

// ExitCode maps a wait status to a shell-style exit code: the child's own
// code, or 128+N when signal N killed it. WaitStatus.ExitStatus is -1 for a
// signalled child, which would become 255; Signaled is checked first.
func ExitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	// Stopped or continued is not an end; a caller asking anyway gets a
	// failure code rather than a misleading success.
	return 255
}
