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
}

// Zombie reports whether the process has exited and waits to be reaped (or
// is being reaped).
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// errFormat is wrapped by Parse for a line that is not /proc/PID/stat's.
var errFormat = errors.New("not a /proc/PID/stat line")

// Parse parses the content of /proc/PID/stat without allocating. The second
// field, comm, is the program's name in parentheses and may itself hold
// spaces and parentheses, so the fields after it are found after the last
// ')'.
func Parse(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("%w: no ')' after comm", errFormat)
	}
	rest := b[i+1:]
	var s Stat
	// The fields after comm, numbered from 0 (state).
	for n := 0; n <= 12; n++ {
		f, more := nextField(rest)
		if f == nil {
			return Stat{}, fmt.Errorf("%w: %d fields after comm, want at least 13", errFormat, n)
		}
		rest = more
		var err error
		switch n {
		case 0:
			s.State = f[0]
		case 1:
			s.PPid, err = atoi(f)
		case 2:
			s.Pgrp, err = atoi(f)
		case 3:
			s.Session, err = atoi(f)
		case 4:
			s.TTY, err = atoi(f)
		case 5:
			s.TPGID, err = atoi(f)
		case 11:
			s.UTime, err = atou(f)
		case 12:
			s.STime, err = atou(f)
		}
		if err != nil {
			return Stat{}, fmt.Errorf("%w: field %d after comm, %q: %v", errFormat, n, f, err)
		}
	}
	return s, nil
}

// Read reads and parses /proc/PID/stat. When the process is gone the error
// wraps fs.ErrNotExist (or ESRCH, for one that vanished while it was read).
func Read(pid int) (Stat, error) {
	var buf [bufSize]byte
	return ReadBuf(pid, buf[:])
}

// bufSize holds every field Parse reads: comm is at most 64 bytes (with
// its escapes), each number at most 20.
const bufSize = 512

// ReadBuf is Read with buf (of at least 512 bytes) for the file's content,
// for a scan of every process that reuses one buffer.
func ReadBuf(pid int, buf []byte) (Stat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stat{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return Stat{}, &os.PathError{Op: "read", Path: path, Err: err}
	}
	s, err := Parse(buf[:n])
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// nextField returns the first space-separated field of b and what follows
// it; nil when there is none.
func nextField(b []byte) (field, rest []byte) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n') {
		b = b[1:]
	}
	if len(b) == 0 {
		return nil, nil
	}
	end := 0
	for end < len(b) && b[end] != ' ' && b[end] != '\n' {
		end++
	}
	return b[:end], b[end:]
}

func atoi(b []byte) (int, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, err := atou(b)
	if err != nil || u > 1<<62 {
		return 0, errors.New("not a number")
	}
	if neg {
		return -int(u), nil
	}
	return int(u), nil
}

func atou(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 19 {
		return 0, errors.New("not a number")
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		u = u*10 + uint64(c-'0')
	}
	return u, nil
}
