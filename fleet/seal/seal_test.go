package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestSealOpenRoundTripAndRotation(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	old, err := ParseKeys([]byte("k1:" + k1 + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	id, ct, err := old.Seal([]byte(`{"tokens":{}}`), []byte("default"))
	if err != nil || id != "k1" {
		t.Fatalf("seal: %v %q", err, id)
	}
	if bytes.Contains(ct, []byte("tokens")) {
		t.Fatal("ciphertext contains plaintext")
	}
	// Rotation: the new key first, the old one still accepted for reading.
	rotated, err := ParseKeys([]byte("# comment\nk2:" + k2 + "\nk1:" + k1 + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := rotated.Open(id, ct, []byte("default"))
	if err != nil || string(pt) != `{"tokens":{}}` {
		t.Fatalf("open with rotated ring: %v %q", err, pt)
	}
	if rotated.WriteKeyID() != "k2" {
		t.Fatalf("write key = %s", rotated.WriteKeyID())
	}
	id2, ct2, _ := rotated.Seal(pt, []byte("default"))
	if id2 != "k2" {
		t.Fatalf("sealed with %s", id2)
	}
	if _, err := old.Open(id2, ct2, []byte("default")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old ring opening new ciphertext: %v", err)
	}
}

func TestOpenRejectsTamperingAndWrongPlace(t *testing.T) {
	k, _ := ParseKeys([]byte("a:" + newKey(t)))
	id, ct, _ := k.Seal([]byte("secret"), []byte("default"))
	if _, err := k.Open(id, ct, []byte("other")); !errors.Is(err, ErrOpen) {
		t.Fatalf("other aad: %v", err)
	}
	ct[len(ct)-1] ^= 1
	if _, err := k.Open(id, ct, []byte("default")); !errors.Is(err, ErrOpen) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := k.Open(id, ct[:5], []byte("default")); !errors.Is(err, ErrOpen) {
		t.Fatalf("short: %v", err)
	}
	// An id this ring does not have is named as such.
	other, _ := ParseKeys([]byte("b:" + newKey(t)))
	if _, err := other.Open("a", ct, []byte("default")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown id: %v", err)
	}
}

// The key id is authenticated with the ciphertext: the same key material
// under another id does not open it, so a swapped key_id column fails.
func TestKeyIDIsBound(t *testing.T) {
	material := newKey(t)
	k, err := ParseKeys([]byte("a:" + material + "\nb:" + material))
	if err != nil {
		t.Fatal(err)
	}
	id, ct, _ := k.Seal([]byte("secret"), []byte("default"))
	if id != "a" {
		t.Fatalf("sealed with %q", id)
	}
	if _, err := k.Open("b", ct, []byte("default")); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened under another id with the same material: %v", err)
	}
}

func TestParseKeysErrorsNeverEchoMaterial(t *testing.T) {
	material := "c2hvcnQta2V5LW1hdGVyaWFs" // "short-key-material"
	hexMaterial := strings.Repeat("5a", 32)
	cases := []string{"", "nocolon", "bad id:" + newKey(t), "a:" + material, "a:" + newKey(t) + ",a:" + newKey(t),
		// Written the wrong way round: the key parses as an id.
		hexMaterial + ":a"}
	for _, c := range cases {
		_, err := ParseKeys([]byte(c))
		if err == nil {
			t.Fatalf("%q: no error", c)
		}
		if strings.Contains(err.Error(), material) || strings.Contains(err.Error(), hexMaterial) {
			t.Fatalf("error echoes key material: %v", err)
		}
	}
	hexKey := strings.Repeat("ab", 32)
	if _, err := ParseKeys([]byte("h:" + hexKey)); err != nil {
		t.Fatalf("hex key: %v", err)
	}
}
