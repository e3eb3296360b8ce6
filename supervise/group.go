package supervise

import (
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/procstat"
)

// reapsOrphans reports whether orphans come to this process: as PID 1 or as a
// child subreaper. Then every zombie of the child's group is ours to reap and
// kill(-pgid, 0) alone tells whether the group is empty.
func reapsOrphans() bool {
	if os.Getpid() == 1 {
		return true
	}
	var flag int32
	err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&flag)), 0, 0, 0)
	return err == nil && flag != 0
}

// groupHasLiving reports whether a process of group pgid is alive (not a
// zombie), from /proc. It is the fallback when the launcher does not reap
// orphans: a leftover's zombie then waits for another reaper, and a dead
// process must not keep the launcher waiting.
func groupHasLiving(pgid int) bool {
	d, err := os.Open("/proc")
	if err != nil {
		return true // cannot tell: assume alive, the deadlines still bound the wait
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		st, err := procstat.Read(pid)
		if err == nil && st.Pgrp == pgid && !st.Zombie() {
			return true
		}
	}
	return false
}
