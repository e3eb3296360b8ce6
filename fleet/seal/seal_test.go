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
	// Same key material under another id must not open (the id is bound).
	k2, _ := ParseKeys([]byte("b:" + strings.TrimPrefix("x", "x") + newKey(t)))
	if _, err := k2.Open("a", ct, []byte("default")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestParseKeysErrorsNeverEchoMaterial(t *testing.T) {
	material := "c2hvcnQta2V5LW1hdGVyaWFs" // "short-key-material"
	cases := []string{"", "nocolon", "bad id:" + newKey(t), "a:" + material, "a:" + newKey(t) + ",a:" + newKey(t)}
	for _, c := range cases {
		_, err := ParseKeys([]byte(c))
		if err == nil {
			t.Fatalf("%q: no error", c)
		}
		if strings.Contains(err.Error(), material) {
			t.Fatalf("error echoes key material: %v", err)
		}
	}
	hexKey := strings.Repeat("ab", 32)
	if _, err := ParseKeys([]byte("h:" + hexKey)); err != nil {
		t.Fatalf("hex key: %v", err)
	}
}
