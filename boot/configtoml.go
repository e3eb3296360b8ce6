package boot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
)

// configName is the CLI's configuration file in CODEX_HOME.
const configFile = "config.toml"

// MaxConfigSize caps a read of config.toml: far above a real one, low enough
// that a planted huge file cannot balloon the launcher.
const MaxConfigSize = 4 << 20

// StoreKey is the config.toml key that chooses where the CLI keeps its login.
const StoreKey = "cli_auth_credentials_store"

// StoreAction says what EnsureFileStore found and did.
type StoreAction string

const (
	StoreCreated StoreAction = "created" // there was no config.toml; one was written with the key
	StoreAdded   StoreAction = "added"   // the key was missing at the top level and was inserted
	StorePresent StoreAction = "present" // the key is already "file" at the top level
	StoreOther   StoreAction = "other"   // the key names another store; the file was left alone
)

// ErrConfigSyntax is wrapped when config.toml cannot be scanned; the file is
// then left alone (the CLI will report it better than we can).
var ErrConfigSyntax = errors.New("config.toml syntax")

// EnsureFileStore makes sure CODEX_HOME/config.toml sets
// cli_auth_credentials_store = "file" at its top level, where the CLI looks for
// it. start.sh appended the line to the end of the file, where a trailing
// [table] swallowed it and the CLI never saw it. The line is inserted at the
// top of the file and every other byte is kept; the write is atomic (temp
// file, renamed; see writeFileAtomic for when it is fsynced).
//
// When the key is set at the top level to another store the file is left as
// the operator wrote it and a warning explains the consequence: "auto" still
// falls back to auth.json, but "keyring" and "ephemeral" make the CLI ignore
// the file the watchdog keeps fresh (and a container has no keyring). A copy
// of the key inside a table has no effect and is left in place.
//
// A new file belongs to owner (the current user when nil), mode 0600; an
// existing file keeps its owner and mode. config.toml is reached in CODEX_HOME
// as every file there is (package dirhandle): a link is written through only
// when root made it where only root can change it (a mounted config stays
// where it was mounted); a link anyone else could have planted is refused
// (dirhandle.ErrUntrustedLink). A FIFO or any other entry that is not a
// regular file is never read or written (dirhandle.ErrNotRegular), nor is a
// file larger than MaxConfigSize (dirhandle.ErrTooLarge): the caller warns
// and goes on.
func EnsureFileStore(home string, owner *User, log hclog.Logger) (StoreAction, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	top, err := dirhandle.Open(home)
	if err != nil {
		return "", fmt.Errorf("CODEX_HOME: %w", err)
	}
	d, configName, err := top.Resolve(configFile)
	top.Close()
	if err != nil {
		return "", fmt.Errorf("config.toml: %w", err)
	}
	defer d.Close()
	path := d.Join(configName)
	data, err := d.ReadFile(configName, MaxConfigSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		content := []byte(storeLine("\n"))
		if err := writeConfig(d, configName, content, 0o600, owner, false); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		log.Debug("config.toml created so that the CLI reads auth.json", "path", path, "key", StoreKey)
		return StoreCreated, nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", path, err)
	}

	scan, err := scanTopLevel(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if scan.found {
		if scan.value == "file" {
			log.Debug("config.toml already uses the file credential store", "path", path)
			return StorePresent, nil
		}
		if scan.value == "auto" {
			log.Warn("config.toml sets a credential store other than file; left as set: auto falls back to auth.json only when no keyring answers",
				"path", path, "key", StoreKey, "value", scan.value)
		} else {
			log.Warn("config.toml sets a credential store other than file; left as set, but the CLI will not read the auth.json that codex-launch keeps fresh",
				"path", path, "key", StoreKey, "value", scan.value)
		}
		return StoreOther, nil
	}
	if scan.inTable {
		log.Debug("config.toml has the store key inside a table, where the CLI ignores it; adding it at the top level", "path", path)
	}

	nl := "\n"
	if bytes.Contains(data, []byte("\r\n")) {
		nl = "\r\n"
	}
	bom := 0
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		bom = 3
	}
	out := make([]byte, 0, len(data)+80)
	out = append(out, data[:bom]...)
	out = append(out, storeLine(nl)...)
	out = append(out, data[bom:]...)

	mode := fs.FileMode(0o600)
	keep := owner
	if st, err := d.Lstat(configName); err == nil {
		mode = fs.FileMode(st.Mode).Perm()
		keep = &User{UID: int(st.Uid), GID: int(st.Gid)}
	}
	if err := writeConfig(d, configName, out, mode, keep, true); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	log.Debug("config.toml: added the file credential store at the top level", "path", path, "key", StoreKey)
	return StoreAdded, nil
}

func storeLine(nl string) string {
	return "# codex-launch: the CLI must read auth.json, which the watchdog keeps fresh" + nl +
		StoreKey + ` = "file"` + nl
}

// writeConfig replaces the config file name in d with data (dirhandle's WriteFile:
// a temporary file owned and moded before any byte of the new content is
// visible, then renamed over it; a reader sees the old file or the new one).
//
// sync (an existing file is replaced) fsyncs the temporary file before the
// rename, so a crash can never leave the operator's config empty. A new file
// needs no fsync, nor does the rename need a directory fsync: whatever a crash
// leaves (nothing, or an empty file, or the old one) the next boot repairs, as
// the edit is idempotent; the boot saves the disk flushes.
func writeConfig(d *dirhandle.Dir, name string, data []byte, mode fs.FileMode, owner *User, sync bool) error {
	var o *dirhandle.Owner
	if owner != nil && (owner.UID != os.Geteuid() || owner.GID != os.Getegid()) {
		o = &dirhandle.Owner{UID: owner.UID, GID: owner.GID}
	}
	return d.WriteFile(name, ".", data, mode, o, sync)
}

// topLevel is what scanTopLevel learnt about the store key.
type topLevel struct {
	found   bool   // the key is set before the first table header
	value   string // its value: the string's content, or the raw text
	inTable bool   // the key appears inside some table
}

// scanTopLevel walks TOML statements far enough to tell the top-level table
// (everything before the first [table] or [[array]] header) from the rest. It
// understands the four string forms, comments, multi-line arrays and inline
// tables, so a "[" inside a value or a string is never taken for a header.
func scanTopLevel(data []byte) (topLevel, error) {
	var res topLevel
	s := &scanner{b: data}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		s.i = 3
	}
	top := true
	for {
		s.skipSpace(true)
		if s.eof() {
			return res, nil
		}
		switch c := s.peek(); c {
		case '#':
			s.skipComment()
			continue
		case '[':
			// A header: [a.b] or [[a.b]]; the rest of the line may hold a comment.
			top = false
			if err := s.skipLine(); err != nil {
				return res, err
			}
			continue
		}
		line := s.line()
		key, err := s.key()
		if err != nil {
			return res, fmt.Errorf("%w: line %d: %v", ErrConfigSyntax, line, err)
		}
		start := s.i
		if err := s.value(); err != nil {
			return res, fmt.Errorf("%w: line %d: %v", ErrConfigSyntax, line, err)
		}
		if len(key) == 1 && key[0] == StoreKey {
			if top {
				res.found = true
				res.value = stringValue(strings.TrimSpace(string(data[start:s.i])))
			} else {
				res.inTable = true
			}
		}
	}
}

// stringValue returns the content of a one-line TOML string, or raw itself.
func stringValue(raw string) string {
	if i := strings.IndexByte(raw, '#'); i >= 0 && !strings.HasPrefix(raw, `"`) && !strings.HasPrefix(raw, `'`) {
		raw = strings.TrimSpace(raw[:i])
	}
	for _, q := range []string{`"`, `'`} {
		if strings.HasPrefix(raw, q) && !strings.HasPrefix(raw, q+q+q) {
			if end := strings.Index(raw[1:], q); end >= 0 {
				return raw[1 : 1+end]
			}
		}
	}
	return raw
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) eof() bool  { return s.i >= len(s.b) }
func (s *scanner) peek() byte { return s.b[s.i] }
func (s *scanner) line() int  { return bytes.Count(s.b[:s.i], []byte("\n")) + 1 }

func (s *scanner) skipSpace(newlines bool) {
	for !s.eof() {
		c := s.peek()
		if c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r')) {
			s.i++
			continue
		}
		return
	}
}

func (s *scanner) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.i++
	}
}

// skipLine skips a header line, honouring quoted keys inside it.
func (s *scanner) skipLine() error {
	for !s.eof() {
		switch s.peek() {
		case '\n':
			return nil
		case '#':
			s.skipComment()
			return nil
		case '"', '\'':
			if err := s.str(); err != nil {
				return err
			}
		default:
			s.i++
		}
	}
	return nil
}

// key reads a possibly dotted, possibly quoted key and the "=" after it.
func (s *scanner) key() ([]string, error) {
	var parts []string
	for {
		s.skipSpace(false)
		if s.eof() {
			return nil, errors.New("key without a value")
		}
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			start := s.i
			if err := s.str(); err != nil {
				return nil, err
			}
			raw := string(s.b[start+1 : s.i-1])
			parts = append(parts, raw) // escapes in a key name are not worth decoding here
		case isBareKey(c):
			start := s.i
			for !s.eof() && isBareKey(s.peek()) {
				s.i++
			}
			parts = append(parts, string(s.b[start:s.i]))
		default:
			return nil, fmt.Errorf("unexpected %q in a key", c)
		}
		s.skipSpace(false)
		if s.eof() {
			return nil, errors.New("key without a value")
		}
		switch s.peek() {
		case '.':
			s.i++
		case '=':
			s.i++
			return parts, nil
		default:
			return nil, fmt.Errorf("unexpected %q after a key", s.peek())
		}
	}
}

func isBareKey(c byte) bool {
	return c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// value skips one value up to the end of its (last) line.
func (s *scanner) value() error {
	depth := 0
	for !s.eof() {
		switch c := s.peek(); c {
		case '"', '\'':
			if err := s.str(); err != nil {
				return err
			}
		case '[', '{':
			depth++
			s.i++
		case ']', '}':
			depth--
			s.i++
			if depth < 0 {
				return fmt.Errorf("unbalanced %q", c)
			}
		case '#':
			s.skipComment()
		case '\n':
			if depth == 0 {
				return nil
			}
			s.i++
		default:
			s.i++
		}
	}
	if depth != 0 {
		return errors.New("unterminated array or inline table")
	}
	return nil
}

// str skips a string of any of the four kinds, starting at its quote.
func (s *scanner) str() error {
	q := s.peek()
	triple := bytes.HasPrefix(s.b[s.i:], []byte{q, q, q})
	if triple {
		s.i += 3
		for !s.eof() {
			if q == '"' && s.peek() == '\\' {
				s.i += 2
				continue
			}
			if bytes.HasPrefix(s.b[s.i:], []byte{q, q, q}) {
				s.i += 3
				// Up to two more quotes may belong to the content: """a""""".
				for k := 0; k < 2 && !s.eof() && s.peek() == q; k++ {
					s.i++
				}
				return nil
			}
			s.i++
		}
		return errors.New("unterminated multi-line string")
	}
	s.i++
	for !s.eof() {
		c := s.peek()
		switch {
		case c == '\n':
			return errors.New("unterminated string")
		case q == '"' && c == '\\':
			s.i += 2
			continue
		case c == q:
			s.i++
			return nil
		}
		s.i++
	}
	return errors.New("unterminated string")
}
