package authwatch

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
)

// RescueFileName holds a refresh's answer that could not be renamed over
// auth.json (disk full, an immutable auth.json, an I/O error): the endpoint
// has redeemed the old refresh token, so these tokens are the login. The CLI
// never reads it; the next pass of any codex-launch (launcher, refresh,
// refresh --once) adopts it under the CLI's lock protocol before it
// considers a POST (adoptRescue). 0600, owned like auth.json.
const RescueFileName = ".codex-launch-rescue-auth.json"

// reserveBytes is the space a refresh reserves in its temporary file before
// the POST: far more than an auth.json needs (a few KiB), so that the
// answer's write cannot meet a full disk.
const reserveBytes = 256 << 10

// ErrCannotCommit is wrapped when, before any POST, the commit is shown
// impossible: no space can be reserved, auth.json is immutable or
// append-only, or CODEX_HOME cannot take a rename. Nothing was spent.
var ErrCannotCommit = errors.New("the new credential could not be written, so no refresh token was sent")

// UnwrittenError is a refresh whose answer arrived but is not in auth.json:
// the old refresh token is spent and the new credential exists only in
// Cred (and, when Rescued, in RescueFileName).
type UnwrittenError struct {
	Cred    *AuthFile
	Rescued bool
	Cause   error
	// RescueErr is why the rescue file could not be written either.
	RescueErr error
}

func (e *UnwrittenError) Error() string {
	msg := "refreshed, not yet written: " + errText(e.Cause)
	if e.Rescued {
		return msg + " (the new credential is kept in " + RescueFileName + " until it can be)"
	}
	if e.RescueErr != nil {
		return msg + " (the rescue file could not be written either: " + e.RescueErr.Error() + ")"
	}
	return msg
}

func (e *UnwrittenError) Unwrap() error { return e.Cause }

// reserve allocates reserveBytes for the temporary file without changing
// its size, so that writing the answer later cannot fail for space. A file
// system without fallocate gets the blocks by a write of zeros, cut back
// before the answer is written (tempFile.write).
func (t *tempFile) reserve() error {
	err := unix.Fallocate(int(t.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, reserveBytes)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		_, err = t.f.WriteAt(make([]byte, reserveBytes), 0)
	}
	if err != nil {
		return fmt.Errorf("%w: reserving %d KiB in CODEX_HOME for it: %w", ErrCannotCommit, reserveBytes>>10, err)
	}
	return nil
}

// checkReplaceable shows, before any POST, that a rename can replace
// auth.json in d: neither CODEX_HOME nor auth.json is immutable or
// append-only (FS_IOC_GETFLAGS; a file system without the flags has
// neither). Write permission on the directory is shown by the temporary
// file already created there.
func checkReplaceable(d *dirhandle.Dir) error {
	if err := checkFlags(d.Fd(), "CODEX_HOME"); err != nil {
		return err
	}
	f, _, err := d.OpenFile(AuthFileName, os.O_RDONLY, 0, nil)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		// Nothing to replace, or a file we may not open: its flags
		// cannot be read, and the rename itself will tell.
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCannotCommit, err)
	}
	defer f.Close()
	return checkFlags(int(f.Fd()), AuthFileName)
}

// Inode flags of <linux/fs.h> (FS_IOC_GETFLAGS).
const (
	fsImmutableFl = 0x10
	fsAppendFl    = 0x20
)

func checkFlags(fd int, what string) error {
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		// ENOTTY, EOPNOTSUPP: no such flags on this file system.
		return nil
	}
	switch {
	case flags&fsImmutableFl != 0:
		return fmt.Errorf("%w: %s is immutable (chattr -i to allow the refresh)", ErrCannotCommit, what)
	case flags&fsAppendFl != 0:
		return fmt.Errorf("%w: %s is append-only (chattr -a to allow the refresh)", ErrCannotCommit, what)
	}
	return nil
}

// rescue keeps data, a refresh's answer that cause kept out of auth.json,
// in RescueFileName: the temporary file itself when it was written whole,
// else a new file. It returns the UnwrittenError for the caller.
func (h Home) rescue(d *dirhandle.Dir, t *tempFile, cred *AuthFile, data []byte, cause error) error {
	ue := &UnwrittenError{Cred: cred, Cause: cause}
	if t != nil && t.name == RescueFileName {
		// Stashed (FileStore.commit): written whole, already named.
		if t.f != nil {
			t.f.Sync()
			t.f.Close()
			t.f = nil
		}
		t.name = ""
		ue.Rescued = d.Sync() == nil
		return ue
	}
	if t != nil && t.f == nil && t.name != "" {
		if err := d.Rename(t.name, RescueFileName); err == nil {
			t.name = ""
			ue.Rescued = d.Sync() == nil
			return ue
		}
	}
	nt, err := h.prepareTemp(d)
	if err == nil {
		defer nt.discard()
		err = nt.write(data)
	}
	if err == nil {
		err = d.Rename(nt.name, RescueFileName)
	}
	if err == nil {
		nt.name = ""
		err = d.Sync()
	}
	ue.Rescued, ue.RescueErr = err == nil, err
	return ue
}

// readRescue reads the rescued credential in d: (nil, nil) when there is
// none.
func readRescue(d *dirhandle.Dir) (*AuthFile, error) {
	data, err := d.ReadFile(RescueFileName, MaxAuthFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", RescueFileName, err)
	}
	f, err := ParseAuthFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RescueFileName, err)
	}
	return f, nil
}
