package boot

import (
	"bytes"
	"errors"
	"github.com/pelletier/go-toml/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
	"github.com/molecule-ai/codex-launch/internal/testenv"
)

const added = "# codex-launch: the CLI must read auth.json, which the watchdog keeps fresh\n" + `cli_auth_credentials_store = "file"` + "\n"

func TestEnsureFileStore(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		action StoreAction
		out    string // "" means unchanged
	}{
		{"empty file", "", StoreAdded, added},
		{"top-level keys only", "model = \"o3\"\n", StoreAdded, added + "model = \"o3\"\n"},
		{"start.sh's swallowed line", "model = \"o3\"\n[profiles.x]\nmodel = \"y\"\ncli_auth_credentials_store = \"file\"\n",
			StoreAdded, added + "model = \"o3\"\n[profiles.x]\nmodel = \"y\"\ncli_auth_credentials_store = \"file\"\n"},
		{"already file", "a = 1\ncli_auth_credentials_store = \"file\"\n[t]\n", StorePresent, ""},
		{"already file, literal, spaced, commented", "  cli_auth_credentials_store='file'   # why\n", StorePresent, ""},
		{"quoted key", "\"cli_auth_credentials_store\" = \"file\"\n", StorePresent, ""},
		{"keyring", "cli_auth_credentials_store = \"keyring\"\n", StoreOther, ""},
		{"auto", "cli_auth_credentials_store = \"auto\"\n", StoreOther, ""},
		{"ephemeral after a table-like string", "x = \"[not.a.table]\"\ncli_auth_credentials_store = \"ephemeral\"\n", StoreOther, ""},
		{"multi-line array with a nested array line", "x = [\n  [1, 2],\n  [3],\n]\ncli_auth_credentials_store = \"keyring\"\n[t]\n", StoreOther, ""},
		{"multi-line string with a header-like line", "s = \"\"\"\n[t]\ncli_auth_credentials_store = \"no\"\n\"\"\"\ncli_auth_credentials_store = \"keyring\"\n", StoreOther, ""},
		{"literal multi-line string", "s = '''\n[t]\n'''\n[real]\ncli_auth_credentials_store = \"keyring\"\n",
			StoreAdded, added + "s = '''\n[t]\n'''\n[real]\ncli_auth_credentials_store = \"keyring\"\n"},
		{"inline table", "a = { b = [1, {c = \"]\"}] }\ncli_auth_credentials_store = \"file\"\n", StorePresent, ""},
		// A dotted key makes the store key a table: a second definition as a
		// string would be invalid TOML, so the file is left alone.
		{"dotted key makes the store key a table", "cli_auth_credentials_store.x = \"file\"\n", StoreOther, ""},
		{"array of tables", "[[mcp]]\ncli_auth_credentials_store = \"file\"\n", StoreAdded, added + "[[mcp]]\ncli_auth_credentials_store = \"file\"\n"},
		{"no trailing newline", "[t]\na = 1", StoreAdded, added + "[t]\na = 1"},
		{"CRLF", "a = 1\r\n[t]\r\n", StoreAdded, strings.ReplaceAll(added, "\n", "\r\n") + "a = 1\r\n[t]\r\n"},
		{"BOM", "\xef\xbb\xbfa = 1\n", StoreAdded, "\xef\xbb\xbf" + added + "a = 1\n"},
		{"escaped quote in a string", "a = \"x\\\"[y]\"\ncli_auth_credentials_store = \"file\"\n", StorePresent, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			path := filepath.Join(home, "config.toml")
			if err := os.WriteFile(path, []byte(c.in), 0o640); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			action, err := EnsureFileStore(home, nil, testLogger(&logs))
			if err != nil {
				t.Fatal(err)
			}
			if action != c.action {
				t.Errorf("action = %s, want %s", action, c.action)
			}
			got, _ := os.ReadFile(path)
			want := c.out
			if want == "" {
				want = c.in
			}
			if string(got) != want {
				t.Errorf("config.toml =\n%q\nwant\n%q", got, want)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Errorf("mode = %v, want the file's own 0640 kept", st.Mode().Perm())
			}
			if c.action == StoreOther && !strings.Contains(logs.String(), "[WARN]") {
				t.Errorf("no warning for another store:\n%s", logs.String())
			}
			// What was written is TOML, with the key at the top level.
			if c.action == StoreAdded {
				var doc map[string]any
				if err := toml.Unmarshal(bytes.TrimPrefix(got, []byte("\xef\xbb\xbf")), &doc); err != nil || doc[StoreKey] != "file" {
					t.Errorf("the result is not TOML with the key at the top level: %v, %v", err, doc[StoreKey])
				}
			}
			// Running again is a no-op once the key is there.
			if c.action == StoreAdded {
				if again, err := EnsureFileStore(home, nil, nil); err != nil || again != StorePresent {
					t.Errorf("second run = %s, %v; want present", again, err)
				}
			}
			leftovers, _ := filepath.Glob(filepath.Join(home, ".config.toml.*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

func TestEnsureFileStoreCreates(t *testing.T) {
	home := t.TempDir()
	action, err := EnsureFileStore(home, nil, nil)
	if err != nil || action != StoreCreated {
		t.Fatalf("EnsureFileStore = %s, %v", action, err)
	}
	path := filepath.Join(home, "config.toml")
	got, _ := os.ReadFile(path)
	if string(got) != added {
		t.Errorf("new config.toml = %q", got)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestEnsureFileStoreThroughLink(t *testing.T) {
	home, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "real.toml")
	if err := os.WriteFile(target, []byte("[t]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, "config.toml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureFileStore(home, nil, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", st, err)
	}
	if got, _ := os.ReadFile(target); string(got) != added+"[t]\n" {
		t.Errorf("target = %q", got)
	}
}

func TestEnsureFileStoreSyntaxError(t *testing.T) {
	for _, in := range []string{"a = \"unterminated\n", "just words\n", "a = [1,\n", "s = \"\"\"\nnever closed\n"} {
		home := t.TempDir()
		path := filepath.Join(home, "config.toml")
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := EnsureFileStore(home, nil, nil)
		if !errors.Is(err, ErrConfigSyntax) {
			t.Errorf("%q: err = %v, want ErrConfigSyntax", in, err)
		}
		if got, _ := os.ReadFile(path); string(got) != in {
			t.Errorf("%q: file changed to %q", in, got)
		}
	}
}

func TestEnsureFileStoreOwner(t *testing.T) {
	testenv.RequireRoot(t)
	home := t.TempDir()
	path := filepath.Join(home, "config.toml")
	if _, err := EnsureFileStore(home, &User{UID: 4321, GID: 4322}, nil); err != nil {
		t.Fatal(err)
	}
	assertOwner(t, path, 4321, 4322)
	// An existing file keeps its owner.
	if err := os.WriteFile(path, []byte("[t]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 777, 778); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureFileStore(home, &User{UID: 4321, GID: 4322}, nil); err != nil {
		t.Fatal(err)
	}
	assertOwner(t, path, 777, 778)
}

// TestEnsureFileStorePlantedLink: as root, a config.toml link that the
// user owning CODEX_HOME made is neither followed, read nor written: its
// target outside keeps its bytes, owner and mode.
func TestEnsureFileStorePlantedLink(t *testing.T) {
	testenv.RequireRoot(t)
	const uid, gid = 4321, 4322
	home, elsewhere := t.TempDir(), t.TempDir()
	os.Chown(home, uid, gid)
	target := filepath.Join(elsewhere, "root.conf")
	if err := os.WriteFile(target, []byte("[t]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(home, "config.toml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, uid, gid)
	if _, err := EnsureFileStore(home, nil, nil); !errors.Is(err, dirhandle.ErrUntrustedLink) {
		t.Errorf("err = %v, want ErrUntrustedLink", err)
	}
	var st syscall.Stat_t
	syscall.Stat(target, &st)
	if got, _ := os.ReadFile(target); string(got) != "[t]\n" || st.Uid != 0 || st.Mode&0o7777 != 0o600 {
		t.Errorf("target = %q uid %d mode %o", got, st.Uid, st.Mode&0o7777)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", st, err)
	}
}
