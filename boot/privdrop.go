package boot

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrNotRoot is wrapped by DropPrivileges when it is asked to become another
// user without the privilege to do so.
var ErrNotRoot = errors.New("not running as root")

// DropPrivileges makes the whole process u, as gosu does: supplementary
// groups, then gid, then uid (in that order, because after setuid the others
// are no longer allowed). On Linux Go applies each call to every thread of
// the process, so no goroutine keeps root behind the drop.
//
// Running as u already is fine, even in another group: Kubernetes'
// runAsUser without runAsGroup starts the container in group 0, and without
// root the group cannot be changed, nor is it needed (files are checked and
// created by uid; see SameUserOtherGroup to warn about it). Asking for
// another user without root is an error wrapping ErrNotRoot, never a silent
// run as the wrong user. The environment (HOME) is the caller's business.
func DropPrivileges(u *User) error {
	if u == nil {
		return nil
	}
	if err := CanDrop(u); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil // already u (CanDrop): a group that differs is kept
	}
	groups := u.Groups
	if len(groups) == 0 {
		groups = []int{u.GID}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("switch to user %s: setgroups: %w", u, err)
	}
	if err := syscall.Setresgid(u.GID, u.GID, u.GID); err != nil {
		return fmt.Errorf("switch to user %s: setgid: %w", u, err)
	}
	if err := syscall.Setresuid(u.UID, u.UID, u.UID); err != nil {
		return fmt.Errorf("switch to user %s: setuid: %w", u, err)
	}
	if os.Getuid() != u.UID || os.Geteuid() != u.UID || os.Getgid() != u.GID || os.Getegid() != u.GID {
		return fmt.Errorf("switch to user %s: still uid %d/%d gid %d/%d", u, os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid())
	}
	return nil
}

// CanDrop reports whether this process can become u: it is root, or it is
// already u (a group that differs is then kept, see SameUserOtherGroup).
func CanDrop(u *User) error {
	if u == nil || os.Geteuid() == 0 {
		return nil
	}
	if os.Geteuid() == u.UID && os.Getuid() == u.UID {
		return nil
	}
	return fmt.Errorf("cannot switch to user %s: %w (uid %d)", u, ErrNotRoot, os.Geteuid())
}

// SameUserOtherGroup reports whether the process already runs as u's uid,
// without root, but in another group than u's: DropPrivileges then keeps the
// group, and the caller should say so.
func SameUserOtherGroup(u *User) bool {
	return u != nil && os.Geteuid() != 0 && os.Geteuid() == u.UID && os.Getegid() != u.GID
}
