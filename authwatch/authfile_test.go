package authwatch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

func TestRoundTripCLIFilesByteIdentical(t *testing.T) {
	c := newCred(1, t0.Add(time.Hour))
	cases := map[string][]byte{
		"cli 0.169 chatgpt": c.file(t0),
		"newer cli keys": cliFile("chatgpt", c.ID, c.Access, c.Refresh, "acct-1", t0,
			",\n  \"agent_identity\": null,\n  \"personal_access_token\": \"pat-x\",\n  \"future\": {\n    \"nested\": [\n      1,\n      {\n        \"a\": \"é\\u00e9 \\\"q\\\" <&>\"\n      }\n    ],\n    \"empty_obj\": {},\n    \"empty_arr\": [],\n    \"num\": 1.50e3\n  }"),
		"old 0.130 no auth_mode":    []byte("{\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {\n    \"id_token\": \"" + c.ID + "\",\n    \"access_token\": \"" + c.Access + "\",\n    \"refresh_token\": \"" + c.Refresh + "\",\n    \"account_id\": null\n  },\n  \"last_refresh\": \"2025-06-01T10:00:00.123456Z\"\n}"),
		"apikey":                    []byte("{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-" + sentinel + "\"\n}"),
		"chatgptAuthTokens":         cliFile("chatgptAuthTokens", c.ID, c.Access, "", "acct-1", t0, ""),
		"unknown key inside tokens": []byte("{\n  \"auth_mode\": \"chatgpt\",\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {\n    \"id_token\": \"" + c.ID + "\",\n    \"access_token\": \"" + c.Access + "\",\n    \"refresh_token\": \"" + c.Refresh + "\",\n    \"account_id\": \"acct-1\",\n    \"token_type\": \"Bearer\",\n    \"scopes\": [\n      \"openid\"\n    ]\n  },\n  \"last_refresh\": \"2026-03-04T05:06:07Z\"\n}"),
		"explicit null tokens":      []byte("{\n  \"OPENAI_API_KEY\": \"sk-x\",\n  \"tokens\": null\n}"),
		"empty tokens object":       []byte("{\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {\n    \"account_id\": null\n  }\n}"),
		"control chars in unknown":  []byte("{\n  \"OPENAI_API_KEY\": null,\n  \"x\": \"a\\nb\\u0001\\t\\b\\f\"\n}"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := ParseAuthFile(data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := f.Marshal(); !bytes.Equal(got, data) {
				t.Fatalf("re-marshal differs\nwant:\n%s\ngot:\n%s", data, got)
			}
		})
	}
}

func TestMarshalCanonicalisesOrderAndIndent(t *testing.T) {
	// Keys out of order, compact, unknown keys first: written in the CLI's
	// order with the unknown keys after, in their own order.
	in := `{"zz":1,"last_refresh":"2026-03-04T05:06:07+00:00","tokens":{"extra":true,"refresh_token":"r","account_id":"a","access_token":"x","id_token":"i"},"aa":[1,2],"auth_mode":"chatgpt"}`
	f, err := ParseAuthFile([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"auth_mode\": \"chatgpt\",\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {\n    \"id_token\": \"i\",\n    \"access_token\": \"x\",\n    \"refresh_token\": \"r\",\n    \"account_id\": \"a\",\n    \"extra\": true\n  },\n  \"last_refresh\": \"2026-03-04T05:06:07+00:00\",\n  \"zz\": 1,\n  \"aa\": [\n    1,\n    2\n  ]\n}"
	if got := string(f.Marshal()); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if lr, ok := f.LastRefresh(); !ok || !lr.Equal(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Fatalf("last_refresh with +00:00 not read: %v %v", lr, ok)
	}
}

func TestLastRefreshForms(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-03-04T05:06:07Z":                t0.Truncate(time.Second),
		"2026-03-04T05:06:07.123456789Z":      t0,
		"2026-03-04T05:06:07.123456789+00:00": t0,
		"2026-03-04T07:06:07.123456789+02:00": t0,
		"2026-03-04T05:06:07.123456":          t0.Truncate(time.Microsecond),
	} {
		f, err := ParseAuthFile([]byte(`{"last_refresh":"` + in + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := f.LastRefresh()
		if !ok || !got.Equal(want) {
			t.Errorf("%s: got %v %v, want %v", in, got, ok, want)
		}
	}
	f, err := ParseAuthFile([]byte(`{"last_refresh":"yesterday"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.LastRefresh(); ok {
		t.Error("garbage last_refresh read as a time")
	}
	if !strings.Contains(string(f.Marshal()), `"last_refresh": "yesterday"`) {
		t.Error("unreadable last_refresh not kept verbatim")
	}
}

func TestFormatTimestampAutoSi(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for ns, want := range map[int]string{
		0:           "2026-01-02T03:04:05Z",
		120_000_000: "2026-01-02T03:04:05.120Z",
		123_456_000: "2026-01-02T03:04:05.123456Z",
		123_456_780: "2026-01-02T03:04:05.123456780Z",
		1:           "2026-01-02T03:04:05.000000001Z",
	} {
		if got := FormatTimestamp(base.Add(time.Duration(ns))); got != want {
			t.Errorf("%d ns: got %s want %s", ns, got, want)
		}
	}
	if got := FormatTimestamp(time.Date(2026, 1, 2, 5, 4, 5, 0, time.FixedZone("x", 7200))); got != "2026-01-02T03:04:05Z" {
		t.Errorf("not UTC: %s", got)
	}
}

func TestModeTable(t *testing.T) {
	tok := `"tokens":{"id_token":"i","access_token":"a","refresh_token":"r","account_id":"x"}`
	cases := []struct {
		name, json  string
		mode        Mode
		refreshable bool
		reason      string
	}{
		{"chatgpt", `{"auth_mode":"chatgpt","OPENAI_API_KEY":null,` + tok + `}`, ModeChatGPT, true, ""},
		{"no auth_mode, no key, tokens (0.130)", `{"OPENAI_API_KEY":null,` + tok + `}`, ModeChatGPT, true, ""},
		{"no auth_mode, key absent entirely", `{` + tok + `}`, ModeChatGPT, true, ""},
		{"no auth_mode, API key", `{"OPENAI_API_KEY":"sk-1",` + tok + `}`, ModeAPIKey, false, "OPENAI_API_KEY"},
		{"no auth_mode, empty API key counts (is_some)", `{"OPENAI_API_KEY":""}`, ModeAPIKey, false, "API-key"},
		{"apikey", `{"auth_mode":"apikey","OPENAI_API_KEY":"sk"}`, ModeAPIKey, false, "apikey"},
		{"chatgptAuthTokens", `{"auth_mode":"chatgptAuthTokens",` + tok + `}`, ModeChatGPTTokens, false, "host application"},
		{"agentIdentity", `{"auth_mode":"agentIdentity","agent_identity":"x"}`, ModeAgentIdentity, false, "agent identity"},
		{"seed bug: upper case is not chatgpt", `{"auth_mode":"ChatGPT",` + tok + `}`, ModeUnknown, false, "not one codex-launch knows"},
		{"seed bug: snake case tokens mode", `{"auth_mode":"chatgpt_auth_tokens",` + tok + `}`, ModeUnknown, false, "not one"},
		{"chatgpt without tokens", `{"auth_mode":"chatgpt"}`, ModeChatGPT, false, "without tokens"},
		{"chatgpt null tokens", `{"auth_mode":"chatgpt","tokens":null}`, ModeChatGPT, false, "without tokens"},
		{"chatgpt empty refresh", `{"auth_mode":"chatgpt","tokens":{"id_token":"i","access_token":"a","refresh_token":""}}`, ModeChatGPT, false, "refresh_token"},
		{"null auth_mode is no auth_mode", `{"auth_mode":null,` + tok + `}`, ModeChatGPT, true, ""},
		{"empty file object", `{}`, ModeChatGPT, false, "without tokens"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ParseAuthFile([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			if m := f.Mode(); m != c.mode {
				t.Errorf("mode %q, want %q", m, c.mode)
			}
			ok, why := f.Refreshable()
			if ok != c.refreshable || !strings.Contains(why, c.reason) {
				t.Errorf("refreshable %v %q, want %v containing %q", ok, why, c.refreshable, c.reason)
			}
		})
	}
}

func TestParseErrorsAreClearAndTokenFree(t *testing.T) {
	cases := map[string]string{
		"not json":           `{"tokens": {"refresh_token": "rt-` + sentinel + `"`,
		"array":              `["rt-` + sentinel + `"]`,
		"tokens not object":  `{"tokens": "rt-` + sentinel + `"}`,
		"refresh not string": `{"tokens": {"refresh_token": 5}, "x": "` + sentinel + `"}`,
		"api key number":     `{"OPENAI_API_KEY": 5}`,
		"duplicate key":      `{"auth_mode":"chatgpt","auth_mode":"apikey"}`,
		"trailing data":      `{} {"a": "` + sentinel + `"}`,
		"empty":              ``,
		"bad syntax":         `{"a": "` + sentinel + `" "b"}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseAuthFile([]byte(in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("want ErrMalformed, got %v", err)
			}
			noLeak(t, "error", err.Error())
		})
	}
}

func TestApply(t *testing.T) {
	c := newCred(1, t0.Add(time.Hour))
	orig := cliFile("chatgpt", c.ID, c.Access, c.Refresh, "acct-1", t0.Add(-24*time.Hour),
		",\n  \"future\": {\n    \"k\": 1\n  }")
	f, err := ParseAuthFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	n2 := newCred(2, t0.Add(9*24*time.Hour))
	now := time.Date(2026, 3, 4, 5, 6, 7, 987654321, time.FixedZone("z", 3600))
	g := f.Apply(TokenResponse{AccessToken: n2.Access, RefreshToken: n2.Refresh}, now)
	want := cliFile("chatgpt", c.ID, n2.Access, n2.Refresh, "acct-1", now, ",\n  \"future\": {\n    \"k\": 1\n  }")
	if got := g.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("apply:\n%s\nwant:\n%s", got, want)
	}
	if !bytes.Equal(f.Marshal(), orig) {
		t.Fatal("Apply changed the original")
	}
	if g.Tokens().IDToken != c.ID || g.Tokens().AccountID != "acct-1" {
		t.Fatal("missing field did not keep its old value / account changed")
	}
	if !strings.Contains(string(g.Marshal()), `"last_refresh": "2026-03-04T04:06:07.987654321Z"`) {
		t.Fatalf("last_refresh not RFC 3339 UTC nanoseconds Z:\n%s", g.Marshal())
	}
	// account_id is never taken from anywhere but the file, even when the
	// new id_token names another account.
	other := mintJWT(map[string]any{authClaim: map[string]any{"chatgpt_account_id": "acct-OTHER"}})
	h := f.Apply(TokenResponse{IDToken: other}, now)
	if h.Tokens().AccountID != "acct-1" || !strings.Contains(string(h.Marshal()), `"account_id": "acct-1"`) {
		t.Fatal("account_id changed on Apply")
	}
}

func TestAccountIDFallsBackToIDToken(t *testing.T) {
	c := newCred(1, t0)
	f, err := ParseAuthFile([]byte(`{"tokens":{"id_token":"` + c.ID + `","access_token":"a","refresh_token":"r","account_id":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.AccountID() != "acct-1" {
		t.Fatalf("got %q", f.AccountID())
	}
}
