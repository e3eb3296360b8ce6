package boot

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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

// CanDrop reports whether this process can become u: it is root with the
// capabilities that takes (CheckDropCapabilities), or it is already u (a
// group that differs is then kept, see SameUserOtherGroup).
func CanDrop(u *User) error {
	if u == nil {
		return nil
	}
	if os.Geteuid() == 0 {
		return CheckDropCapabilities(u)
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

// dropCapabilities are what root needs to hand CODEX_HOME to another user
// (chown; DAC_OVERRIDE to walk and fill a tree that user already owns, 0700,
// as on every boot after the first) and to become that user (setgroups and
// setgid, setuid).
var dropCapabilities = []struct {
	name string
	bit  uint
}{{"CHOWN", unix.CAP_CHOWN}, {"DAC_OVERRIDE", unix.CAP_DAC_OVERRIDE}, {"SETUID", unix.CAP_SETUID}, {"SETGID", unix.CAP_SETGID}}

// ErrMissingCapabilities is wrapped by CheckDropCapabilities.
var ErrMissingCapabilities = errors.New("root lacks capabilities")

// CheckDropCapabilities fails, naming them, when the process is root but
// lacks a capability it needs to switch to u: a container started with every
// capability dropped is root in name only, and its chown or setuid would fail
// with a bare "operation not permitted". Not root, or u nil or root: nothing
// to check. When the capability set cannot be read, the operations speak.
func CheckDropCapabilities(u *User) error {
	if u == nil || u.UID == 0 || os.Geteuid() != 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil
	}
	missing := missingCapabilities(uint64(data[0].Effective) | uint64(data[1].Effective)<<32)
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w %s, needed to hand CODEX_HOME to user %s and switch to it (it needs CHOWN, DAC_OVERRIDE, SETUID and SETGID): "+
		"add them back (docker run --cap-add CHOWN,DAC_OVERRIDE,SETUID,SETGID; Kubernetes securityContext.capabilities.add), "+
		"or run the container as the user itself (docker run --user %d; runAsUser: %d), which needs none",
		ErrMissingCapabilities, strings.Join(missing, ", "), u, u.UID, u.UID)
}

// missingCapabilities names the dropCapabilities absent from the effective set eff.
func missingCapabilities(eff uint64) []string {
	var missing []string
	for _, c := range dropCapabilities {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	return missing
}
