package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Exit codes for a child that never ran, as shells and tini use them.
const (
	CodeNotFound      = 127 // no such program
	CodeCannotExecute = 126 // found but not executable
	CodeLauncher      = 125 // the launcher itself failed to start it
)

// StartError says why the child could not be started. Code is the exit
// status the launcher should end with.
type StartError struct {
	Program string // argv[0] as given
	Path    string // what was resolved, when something was
	Code    int    // CodeNotFound, CodeCannotExecute or CodeLauncher
	Err     error
}

func (e *StartError) Error() string {
	switch e.Code {
	case CodeNotFound:
		return fmt.Sprintf("%s: cannot execute: %v", e.Program, e.Err)
	case CodeCannotExecute:
		if e.Path != "" && e.Path != e.Program {
			return fmt.Sprintf("%s (%s): cannot execute: %v", e.Program, e.Path, e.Err)
		}
		return fmt.Sprintf("%s: cannot execute: %v", e.Program, e.Err)
	}
	return fmt.Sprintf("%s: cannot start: %v", e.Program, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// defaultPath is used when the child's environment has no PATH, as Docker
// sets it for an image that declares none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookEnv finds key in an environment list. The first one wins when a key
// repeats, as getenv in the child would see it.
func lookEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Identity is a user whose right to execute a program is judged: the owner,
// group or other execute bit that applies to it, as execve would decide.
type Identity struct {
	UID, GID int
	Groups   []int // supplementary groups
}

// Resolve finds prog as the child will (see resolve) and checks that id may
// execute it, without starting anything: the launcher uses it to refuse a
// command that cannot run before it writes anything. Errors are *StartError
// with the exit code to use (126, 127).
func Resolve(prog string, env []string, id *Identity) (string, error) {
	return resolve(prog, env, "", id)
}

// resolve finds the program to execute. A name with a slash is used as it is
// (relative to dir); otherwise the child's own PATH is searched, as execvp
// would in the child. id, when set, is who must be able to execute it; nil
// accepts any execute bit and leaves the verdict to execve. Errors are
// *StartError with the exit code to use.
func resolve(prog string, env []string, dir string, id *Identity) (string, error) {
	if prog == "" {
		return "", &StartError{Program: prog, Code: CodeNotFound, Err: errors.New("empty command")}
	}
	if strings.Contains(prog, "/") {
		p := prog
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p, id); err != nil {
			return "", classify(prog, prog, err)
		}
		return prog, nil
	}
	pathList, ok := lookEnv(env, "PATH")
	if !ok {
		pathList = defaultPath
	}
	var firstDenied error
	var deniedPath string
	for _, d := range filepath.SplitList(pathList) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, prog)
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		err := checkExecutable(p, id)
		if err == nil {
			return filepath.Join(d, prog), nil
		}
		// Only a file that exists counts as found-but-not-executable; a
		// directory on PATH that cannot be searched hides nothing we could
		// run (bash says "not found" there too).
		if !errors.Is(err, os.ErrNotExist) && !isStatError(err) && firstDenied == nil {
			firstDenied, deniedPath = err, p
		}
	}
	// Like execvp: a match that cannot be executed beats "not found".
	if firstDenied != nil {
		return "", classify(prog, deniedPath, firstDenied)
	}
	return "", &StartError{Program: prog, Code: CodeNotFound, Err: fmt.Errorf("command not found in PATH %s", pathList)}
}

// isStatError reports an error from stat itself (the file could not even be
// looked at), as opposed to checkExecutable's verdict on a file it saw.
func isStatError(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe)
}

// checkExecutable rejects what execve would, with a clearer reason.
func checkExecutable(p string, id *Identity) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return syscall.EISDIR
	}
	if !st.Mode().IsRegular() {
		return syscall.EACCES
	}
	if st.Mode().Perm()&executeBits(st, id) == 0 {
		return syscall.EACCES
	}
	return nil
}

// executeBits are the execute bits of st's mode that apply to id: all three
// for root or an unknown identity, else the owner's, the group's or the
// others' bit.
func executeBits(st os.FileInfo, id *Identity) os.FileMode {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if id == nil || id.UID == 0 || !ok {
		return 0o111
	}
	if int(sys.Uid) == id.UID {
		return 0o100
	}
	if int(sys.Gid) == id.GID || slices.Contains(id.Groups, int(sys.Gid)) {
		return 0o010
	}
	return 0o001
}

// classify turns an error from resolving or execve into a *StartError.
func classify(prog, path string, err error) error {
	var errno syscall.Errno
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	code := CodeLauncher
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			code = CodeNotFound
			err = errno
		case syscall.EACCES, syscall.EPERM, syscall.EISDIR, syscall.ETXTBSY, syscall.ELOOP, syscall.ENAMETOOLONG:
			code = CodeCannotExecute
			err = errno
		case syscall.ENOEXEC:
			code = CodeCannotExecute
			err = fmt.Errorf("%w (not a binary, and a script needs a #! line)", errno)
		case syscall.E2BIG:
			code = CodeCannotExecute
		}
	}
	return &StartError{Program: prog, Path: path, Code: code, Err: err}
}
