package supervise

import (
	"bytes"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
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
	want := []byte(strconv.Itoa(pgid))
	buf := make([]byte, 512)
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		n, err := readSmall("/proc/"+name+"/stat", buf)
		if err != nil {
			continue
		}
		b := buf[:n]
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 3 || !bytes.Equal(f[2], want) {
			continue
		}
		if f[0][0] != 'Z' && f[0][0] != 'X' {
			return true
		}
	}
	return false
}

func readSmall(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Read(fd, buf)
}
