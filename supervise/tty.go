package supervise

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// foregroundOwner reports whether fd is a terminal whose foreground process
// group is ours, the only case in which handing it to the child is right: a
// launcher started in the background (`codex-launch ... &`) must not steal
// the terminal from the shell's foreground job.
func foregroundOwner(fd int) bool {
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return false // not a terminal, or no controlling terminal
	}
	return fg == unix.Getpgrp()
}

// setForeground makes pgrp the foreground group of the terminal on fd. The
// caller may be in the background; tcsetpgrp from the background raises
// SIGTTOU unless it is blocked or ignored. Ignoring it would be inherited by
// the child (the Go runtime resets only signals it handles), so it is blocked
// instead, on this OS thread only and only for the call.
func setForeground(fd, pgrp int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	sigsetAdd(&set, unix.SIGTTOU)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return os.NewSyscallError("pthread_sigmask", err)
	}
	err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
	if e := unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil); e != nil && err == nil {
		err = e
	}
	if err != nil {
		return os.NewSyscallError("tcsetpgrp", err)
	}
	return nil
}

func sigsetAdd(set *unix.Sigset_t, sig unix.Signal) {
	n := uint(sig) - 1
	set.Val[n/64] |= 1 << (n % 64)
}
