package fleet

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/molecule-ai/codex-launch/authwatch"
)

func TestSettingsKeyring(t *testing.T) {
	b := make([]byte, 32)
	rand.Read(b)
	key := base64.StdEncoding.EncodeToString(b)
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("new:"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := Settings{KeyFile: file, Keys: "old:" + key}.Keyring()
	if err != nil || k.WriteKeyID() != "new" || len(k.IDs()) != 2 {
		t.Fatalf("keys: %v %v", k, err)
	}
	if k, err := (Settings{}).Keyring(); k != nil || err != nil {
		t.Fatalf("no keys: %v %v", k, err)
	}
	_, err = Settings{Keys: "bad:c2hvcnQ="}.Keyring()
	if err == nil || strings.Contains(err.Error(), "c2hvcnQ=") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := (Settings{KeyFile: filepath.Join(t.TempDir(), "missing")}).Keyring(); err == nil {
		t.Fatal("missing key file accepted")
	}
}

// The shared store's name is the same whether the launcher's configuration
// or the Fleet itself says it.
func TestDescribeIsTheFleetsName(t *testing.T) {
	s := Settings{Store: "postgres://codex:pw-secret@db:5432/fleet", Name: "team-a"}
	f, err := New(Config{URL: s.Store, Name: s.Name, Home: authwatch.Home{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Describe() != f.String() || strings.Contains(s.Describe(), "pw-secret") {
		t.Fatalf("Describe %q, Fleet %q", s.Describe(), f.String())
	}
}
