package authwatch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseAuthFile: any input either fails cleanly (ErrMalformed, no panic)
// or parses into a file whose encoding is stable: parsing what Marshal wrote
// gives the same tokens, mode and bytes again, and Apply keeps every unknown
// key.
func FuzzParseAuthFile(f *testing.F) {
	c := newCred(1, time.Unix(1900000000, 0))
	f.Add(c.file(time.Unix(1800000000, 5)))
	f.Add([]byte(`{"OPENAI_API_KEY":null,"tokens":{"id_token":"a.b.c","access_token":"x","refresh_token":"r","account_id":null,"k":[1,{"z":null}]},"last_refresh":"2025-01-01T00:00:00+00:00","agent_identity":"\u2028"}`))
	f.Add([]byte(`{"auth_mode":"chatgptAuthTokens","tokens":null}`))
	f.Add([]byte(`{"auth_mode":"chatgpt","auth_mode":"x"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":1e999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAuthFile(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out := a.Marshal()
		b, err := ParseAuthFile(out)
		if err != nil {
			t.Fatalf("Marshal wrote what Parse refuses: %v\n%s", err, out)
		}
		if a.Tokens() != b.Tokens() || a.Mode() != b.Mode() {
			t.Fatalf("round trip changed the credential")
		}
		if out2 := b.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("Marshal not stable:\n%s\n%s", out, out2)
		}
		if la, oka := a.LastRefresh(); oka {
			if lb, okb := b.LastRefresh(); !okb || !la.Equal(lb) {
				t.Fatal("last_refresh changed in the round trip")
			}
		}
		n := a.Apply(TokenResponse{AccessToken: "new.access.tok", RefreshToken: "new-refresh"}, time.Unix(1800000000, 0))
		m, err := ParseAuthFile(n.Marshal())
		if err != nil {
			t.Fatalf("Apply wrote what Parse refuses: %v", err)
		}
		if strings.Join(m.UnknownKeys(), "\x00") != strings.Join(a.UnknownKeys(), "\x00") {
			t.Fatalf("Apply lost unknown keys: %v vs %v", m.UnknownKeys(), a.UnknownKeys())
		}
		if m.Tokens().AccountID != a.Tokens().AccountID || m.Tokens().RefreshToken != "new-refresh" {
			t.Fatal("Apply changed account_id or did not set the token")
		}
	})
}

// FuzzParseJWT: never panics; failures wrap ErrNotJWT and never quote the
// input.
func FuzzParseJWT(f *testing.F) {
	f.Add(mintJWT(map[string]any{"exp": 1700000000, "email": "a@b", authClaim: map[string]any{"chatgpt_account_id": "x"}}))
	f.Add("a.eyJleHAiOjF9.c")
	f.Add("a.eyJleHAiOjF9==.c")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Add("a.bnVsbA.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ParseJWT(tok)
		if err != nil {
			if !errors.Is(err, ErrNotJWT) {
				t.Fatalf("error does not wrap ErrNotJWT: %v", err)
			}
			if len(tok) >= 12 && strings.Contains(err.Error(), tok) {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}
		if c.HasExpiry && c.Expiry.IsZero() {
			t.Fatal("HasExpiry with zero time")
		}
	})
}
