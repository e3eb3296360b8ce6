package boot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/pelletier/go-toml/v2"

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
	if scan.table {
		// A dotted key (cli_auth_credentials_store.x = ...) makes it a
		// table: adding the string would be a second definition, which
		// no TOML reader accepts. The CLI will refuse the file itself.
		log.Warn("config.toml defines the credential store key as a table; left alone (the CLI expects a string: \"file\")", "path", path, "key", StoreKey)
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

// topLevel is what config.toml says about the store key.
type topLevel struct {
	found   bool   // the key is set at the top level
	value   string // its value, when it is a string
	table   bool   // at the top level it is a table (a dotted key), not a string
	inTable bool   // the key appears inside some table, where the CLI ignores it
}

// scanTopLevel parses data as TOML (the CLI's own format; a file the parser
// refuses is ErrConfigSyntax and left alone) and reports the store key.
func scanTopLevel(data []byte) (topLevel, error) {
	var res topLevel
	var doc map[string]any
	if err := toml.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			// The message only: the error's context would quote the file,
			// which may hold a provider's API key.
			return res, fmt.Errorf("%w: line %d, column %d: %s", ErrConfigSyntax, row, col, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return res, fmt.Errorf("%w: %v", ErrConfigSyntax, err)
	}
	switch v := doc[StoreKey].(type) {
	case nil:
	case string:
		res.found, res.value = true, v
	case map[string]any:
		res.table = true
	default:
		res.found, res.value = true, fmt.Sprint(v)
	}
	for k, v := range doc {
		if k != StoreKey && hasKey(v, StoreKey) {
			res.inTable = true
		}
	}
	return res, nil
}

// hasKey reports whether v, a decoded TOML value, holds key in a table at
// any depth.
func hasKey(v any, key string) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, sub := range t {
			if k == key || hasKey(sub, key) {
				return true
			}
		}
	case []any:
		for _, sub := range t {
			if hasKey(sub, key) {
				return true
			}
		}
	}
	return false
}
