// Package seal encrypts the credential stored in the shared database, so that
// a database dump, a replica or a backup does not hold a usable login.
//
// AES-256-GCM (authenticated: a changed byte is an error, not a different
// credential). Each ciphertext is stored beside the id of the key that sealed
// it, so several keys can be accepted for reading while the first one seals
// new writes: that is how keys rotate without a flag day.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownKey means a ciphertext names a key id this keyring does not have.
var ErrUnknownKey = errors.New("sealed with a key id that is not configured")

// ErrOpen means the ciphertext does not authenticate under its key (wrong
// key material for that id, or a changed row).
var ErrOpen = errors.New("ciphertext does not authenticate")

// validKeyID: 1-64 of A-Z a-z 0-9 . _ - (a loop, not a regexp: this
// package is linked into every start of the launcher and health check).
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring holds the keys: the first seals, all open.
type Keyring struct{ keys []key }

// ParseKeys reads keys, one per line (or separated by commas): `ID:KEY`, where
// KEY is 32 bytes in standard or URL-safe base64 (with or without padding) or
// in hex. Blank lines and lines starting with # are ignored. The first key
// seals new writes. Error messages never contain key material.
func ParseKeys(text []byte) (*Keyring, error) {
	k := &Keyring{}
	seen := map[string]bool{}
	fields := strings.FieldsFunc(string(text), func(r rune) bool { return r == '\n' || r == ',' || r == '\r' })
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" || strings.HasPrefix(f, "#") {
			continue
		}
		id, material, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("key entry %d: want ID:KEY", i+1)
		}
		id = strings.TrimSpace(id)
		if !validKeyID(id) {
			return nil, fmt.Errorf("key entry %d: key id must be 1-64 of A-Z a-z 0-9 . _ -", i+1)
		}
		// Entries are named by position, not id: in an entry written the
		// wrong way round (KEY:ID), what parses as the id is the key.
		if seen[id] {
			return nil, fmt.Errorf("key entry %d: its id appears twice", i+1)
		}
		raw, err := decodeKey(strings.TrimSpace(material))
		if err != nil {
			return nil, fmt.Errorf("key entry %d: %w", i+1, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key entry %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key entry %d: %w", i+1, err)
		}
		seen[id] = true
		k.keys = append(k.keys, key{id: id, aead: aead})
	}
	if len(k.keys) == 0 {
		return nil, errors.New("no keys given")
	}
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("want 32 bytes (AES-256) in base64 or hex")
}

// WriteKeyID is the id of the key that seals.
func (k *Keyring) WriteKeyID() string { return k.keys[0].id }

// IDs lists the configured key ids, the sealing one first.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i, kk := range k.keys {
		ids[i] = kk.id
	}
	return ids
}

// Seal encrypts plaintext with the first key. aad binds the ciphertext to its
// place (the credential's name), so a row copied under another name fails.
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, ciphertext []byte, err error) {
	kk := k.keys[0]
	nonce := make([]byte, kk.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("nonce: %w", err)
	}
	return kk.id, kk.aead.Seal(nonce, nonce, plaintext, bindAAD(kk.id, aad)), nil
}

// Open decrypts a ciphertext sealed under keyID.
func (k *Keyring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	for _, kk := range k.keys {
		if kk.id != keyID {
			continue
		}
		ns := kk.aead.NonceSize()
		if len(ciphertext) < ns+kk.aead.Overhead() {
			return nil, fmt.Errorf("key %q: %w (too short)", keyID, ErrOpen)
		}
		pt, err := kk.aead.Open(nil, ciphertext[:ns], ciphertext[ns:], bindAAD(kk.id, aad))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", keyID, ErrOpen)
		}
		return pt, nil
	}
	return nil, fmt.Errorf("key %q: %w", keyID, ErrUnknownKey)
}

// bindAAD makes the key id part of what is authenticated, so the id stored
// beside a ciphertext cannot be swapped.
func bindAAD(id string, aad []byte) []byte {
	var b bytes.Buffer
	b.WriteString("codex-launch/seal/v1\x00")
	b.WriteString(id)
	b.WriteByte(0)
	b.Write(aad)
	return b.Bytes()
}
