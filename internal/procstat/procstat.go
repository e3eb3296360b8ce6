// Package procstat reads /proc/PID/stat, the kernel's one-line summary of a
// process, for the code that watches processes from outside: the
// supervisor's check of a process group, the tests and the benchmarks.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Stat is the part of /proc/PID/stat that is read here (proc(5) names the
// fields).
type Stat struct {
	State   byte // R, S, D, Z, T, t, X, ...
	PPid    int
	Pgrp    int
	Session int
	TTY     int // tty_nr: the controlling terminal's device number, 0 for none
	TPGID   int // the foreground group of that terminal, -1 for none
	UTime   uint64
	STime   uint64 // clock ticks spent in user and kernel mode
	CUTime  uint64
	CSTime  uint64 // the same, of the children it has reaped (waited for)
}

// Zombie reports whether the process has exited and waits to be reaped (or
// is being reaped).
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// errFormat is wrapped by Parse for a line that is not /proc/PID/stat's.
var errFormat = errors.New("not a /proc/PID/stat line")

// Parse parses the content of /proc/PID/stat. The second field, comm, is the
// program's name in parentheses and may itself hold spaces and parentheses,
// so the fields after it are found after the last ')'.
func Parse(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("%w: no ')' after comm", errFormat)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, state
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("%w: %d fields after comm, want at least 15", errFormat, len(f))
	}
	s := Stat{State: f[0][0]}
	var err error
	for k, p := range []*int{&s.PPid, &s.Pgrp, &s.Session, &s.TTY, &s.TPGID} {
		if *p, err = strconv.Atoi(f[1+k]); err != nil {
			return Stat{}, fmt.Errorf("%w: field %d: %w", errFormat, 4+k, err)
		}
	}
	for k, p := range []*uint64{&s.UTime, &s.STime, &s.CUTime, &s.CSTime} {
		if *p, err = strconv.ParseUint(f[11+k], 10, 64); err != nil {
			return Stat{}, fmt.Errorf("%w: field %d: %w", errFormat, 14+k, err)
		}
	}
	return s, nil
}

// Read reads and parses /proc/PID/stat. When the process is gone the error
// wraps fs.ErrNotExist (or ESRCH, for one that vanished while it was read).
// It costs three system calls, so that a scan of every process stays cheap.
func Read(pid int) (Stat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stat{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [512]byte // every field Parse reads fits: comm is at most 64 bytes
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return Stat{}, &os.PathError{Op: "read", Path: path, Err: err}
	}
	s, err := Parse(buf[:n])
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
