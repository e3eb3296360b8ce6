package boot

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
)

// EnvVar is one variable read from an env directory.
type EnvVar struct {
	Name  string
	Value string
}

// maxEnvFile bounds one variable: a secret is a few kilobytes, so anything
// much larger is a mistake (a mounted archive, a log), not a value.
const maxEnvFile = 1 << 20

// LoadEnvDir reads dir, where each regular file is one variable named after
// the file and holding its content, minus one trailing newline. This is how
// secrets with newlines in them (CODEX_AUTH_JSON) reach a container: they
// cannot travel through `docker --env-file`.
//
// Symbolic links are followed, because Kubernetes mounts a Secret as links
// into a hidden `..data` directory; hidden entries are skipped quietly for the
// same reason. A name that is not a valid variable name, a value holding a NUL
// byte (which no environment can carry) and a file larger than 1 MiB are
// skipped with a warning. A file that cannot be read is an error: a secret
// that silently goes missing is worse than a container that does not start.
// Values never reach the log.
func LoadEnvDir(dir string, log hclog.Logger) ([]EnvVar, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d, err := dirhandle.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("env directory %s: %w", dir, err)
	}
	defer d.Close()
	entries, err := d.Names()
	if err != nil {
		return nil, fmt.Errorf("env directory %s: %w", dir, err)
	}
	sort.Strings(entries)
	var vars []EnvVar
	for _, name := range entries {
		if strings.HasPrefix(name, ".") {
			log.Debug("env directory: skipping hidden entry", "file", name)
			continue
		}
		st, err := d.StatLinked(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				log.Warn("env directory: skipping dangling link", "file", name)
				continue
			}
			return nil, fmt.Errorf("env directory: %w", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			log.Warn("env directory: skipping entry that is not a regular file", "file", name, "type", dirhandle.TypeName(st.Mode))
			continue
		}
		if !ValidEnvName(name) {
			log.Warn("env directory: skipping file whose name is not a valid variable name", "file", name)
			continue
		}
		data, err := d.ReadLinkedFile(name, maxEnvFile)
		switch {
		case errors.Is(err, dirhandle.ErrTooLarge):
			log.Warn("env directory: skipping file larger than 1 MiB", "variable", name, "bytes", st.Size)
			continue
		case errors.Is(err, dirhandle.ErrNotRegular):
			// Swapped since the stat above.
			log.Warn("env directory: skipping entry that is not a regular file", "file", name, "error", err)
			continue
		case err != nil:
			return nil, fmt.Errorf("env directory: variable %s: %w", name, err)
		}
		value := strings.TrimSuffix(string(data), "\n")
		if strings.IndexByte(value, 0) >= 0 {
			log.Warn("env directory: skipping variable whose value holds a NUL byte", "variable", name)
			continue
		}
		vars = append(vars, EnvVar{Name: name, Value: value})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.Name
	}
	log.Debug("env directory loaded", "dir", dir, "variables", names)
	return vars, nil
}

// ValidEnvName reports whether name can be exported by a POSIX shell:
// a letter or underscore, then letters, digits and underscores.
func ValidEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// MergeEnv returns environ with vars set, each replacing any earlier
// definition of the same name (the env directory wins, as when start.sh
// sourced it after the container's environment was set).
func MergeEnv(environ []string, vars []EnvVar) []string {
	out := append([]string(nil), environ...)
	for _, v := range vars {
		out = SetEnv(out, v.Name, v.Value)
	}
	return out
}

// SetEnv returns environ with name=value, replacing every earlier definition.
func SetEnv(environ []string, name, value string) []string {
	out := UnsetEnv(environ, name)
	return append(out, name+"="+value)
}

// UnsetEnv returns environ without any definition of the names.
func UnsetEnv(environ []string, names ...string) []string {
	out := make([]string, 0, len(environ))
next:
	for _, kv := range environ {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") || kv == n {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// LookupEnv finds name in environ; the last definition wins, as in os/exec.
func LookupEnv(environ []string, name string) (string, bool) {
	prefix := name + "="
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], prefix); ok {
			return v, true
		}
	}
	return "", false
}
