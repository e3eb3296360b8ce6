package tokenmock

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAuthJSONIsTheCLIFormat(t *testing.T) {
	c := Credential{IDToken: "i.d.t", AccessToken: "a.c.c", RefreshToken: "rt", AccountID: "acct-1"}
	lr := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	got := string(FormatAuthJSON(c, lr, FileOptions{}))
	want := `{
  "auth_mode": "chatgpt",
  "OPENAI_API_KEY": null,
  "tokens": {
    "id_token": "i.d.t",
    "access_token": "a.c.c",
    "refresh_token": "rt",
    "account_id": "acct-1"
  },
  "last_refresh": "2026-01-02T02:04:05.123456789Z"
}`
	if got != want {
		t.Errorf("auth.json:\n%s\nwant:\n%s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatal(err)
	}
}

func TestAuthJSONVariants(t *testing.T) {
	c := Credential{IDToken: "i", AccessToken: "a", RefreshToken: "r", AccountID: "x"}
	got := string(FormatAuthJSON(c, time.Unix(0, 0), FileOptions{
		OmitMode: true,
		Extra:    []RawKey{{"agent_identity", json.RawMessage(`{"a":[1,2]}`)}},
	}))
	if strings.Contains(got, "auth_mode") {
		t.Errorf("OmitMode kept auth_mode")
	}
	if !strings.HasSuffix(got, "\"last_refresh\": \"1970-01-01T00:00:00Z\",\n  \"agent_identity\": {\n    \"a\": [\n      1,\n      2\n    ]\n  }\n}") {
		t.Errorf("extra key not appended in CLI layout:\n%s", got)
	}
	got = string(FormatAuthJSON(c, time.Unix(0, 0), FileOptions{Mode: "apikey", APIKey: "sk-x", NoTokens: true, NoLastRefresh: true}))
	want := "{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-x\",\n  \"tokens\": null\n}"
	if got != want {
		t.Errorf("api key file:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		ns   int
		want string
	}{
		{0, "2026-01-02T03:04:05Z"},
		{5_000_000, "2026-01-02T03:04:05.005Z"},
		{5_000, "2026-01-02T03:04:05.000005Z"},
		{5, "2026-01-02T03:04:05.000000005Z"},
	} {
		if got := FormatTime(time.Date(2026, 1, 2, 3, 4, 5, tc.ns, time.UTC)); got != tc.want {
			t.Errorf("FormatTime(ns=%d) = %s, want %s", tc.ns, got, tc.want)
		}
	}
}

func TestMintJWTRoundTrip(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0)
	tok := MintJWT(Claims("acct-9", "e@x", exp))
	if n := strings.Count(tok, "."); n != 2 {
		t.Fatalf("%d dots", n)
	}
	if strings.ContainsAny(tok, "=+/") {
		t.Errorf("not base64url without padding")
	}
	m, err := DecodeClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if m["exp"].(float64) != float64(exp.Unix()) || m["email"] != "e@x" {
		t.Errorf("claims = %v", m)
	}
	auth := m[AuthClaim].(map[string]any)
	if auth["chatgpt_account_id"] != "acct-9" || auth["chatgpt_plan_type"] != "plus" {
		t.Errorf("auth claims = %v", auth)
	}
	if _, err := DecodeClaims("nodots"); err == nil {
		t.Errorf("DecodeClaims accepted a non-JWT")
	}
}
