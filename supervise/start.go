package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// resolve finds the program to execute. A name with a slash is used as it is
// (relative to dir); otherwise the child's own PATH is searched, as execvp
// would in the child. Errors are *StartError with the exit code to use.
func resolve(prog string, env []string, dir string) (string, error) {
	if prog == "" {
		return "", &StartError{Program: prog, Code: CodeNotFound, Err: errors.New("empty command")}
	}
	if strings.Contains(prog, "/") {
		p := prog
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
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
		err := checkExecutable(p)
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
func checkExecutable(p string) error {
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
	if st.Mode().Perm()&0o111 == 0 {
		return syscall.EACCES
	}
	return nil
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
