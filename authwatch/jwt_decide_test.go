package authwatch

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseJWT(t *testing.T) {
	full := mintJWT(map[string]any{"exp": 1700000000, "email": "a@b.c",
		authClaim: map[string]any{"chatgpt_account_id": "acc", "chatgpt_plan_type": "plus", "chatgpt_user_id": "u1"}})
	c, err := ParseJWT(full)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{Expiry: time.Unix(1700000000, 0).UTC(), HasExpiry: true, Email: "a@b.c", AccountID: "acc", PlanType: "plus", UserID: "u1"}
	if c != want {
		t.Fatalf("got %+v want %+v", c, want)
	}

	payload := `{"exp":1700000001,"https://api.openai.com/profile":{"email":"p@x"},"https://api.openai.com/auth":{"user_id":"u2"}}`
	for len(payload)%3 == 0 {
		payload += " "
	}
	padded := "aGVhZA." + base64.URLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	if !strings.Contains(padded, "=") {
		t.Fatal("fixture should be padded")
	}
	c, err = ParseJWT(padded)
	if err != nil {
		t.Fatalf("padding not tolerated: %v", err)
	}
	if !c.HasExpiry || c.Expiry.Unix() != 1700000001 || c.Email != "p@x" || c.UserID != "u2" {
		t.Fatalf("fallbacks: %+v", c)
	}

	c, err = ParseJWT("h." + b64([]byte(`{"exp":1700000000.5}`)) + ".s")
	if err != nil || !c.HasExpiry || c.Expiry.Unix() != 1700000000 {
		t.Fatalf("fractional exp: %+v %v", c, err)
	}
	c, err = ParseJWT("h." + b64([]byte(`{"exp":"soon","email":5}`)) + ".s")
	if err != nil || c.HasExpiry || c.Email != "" {
		t.Fatalf("wrong-typed claims must be ignored: %+v %v", c, err)
	}
	c, err = ParseJWT("h." + b64([]byte(`{"exp":1e300}`)) + ".s")
	if err != nil || c.HasExpiry {
		t.Fatalf("absurd exp must be unreadable: %+v %v", c, err)
	}

	for name, bad := range map[string]string{
		"empty":           "",
		"two parts":       "a.b",
		"empty signature": "a." + b64([]byte(`{}`)) + ".",
		"empty header":    "." + b64([]byte(`{}`)) + ".s",
		"not base64":      "a.%%%" + sentinel + ".s",
		"not json":        "a." + b64([]byte("nope "+sentinel)) + ".s",
		"json array":      "a." + b64([]byte(`[1]`)) + ".s",
		"json null":       "a." + b64([]byte(`null`)) + ".s",
		"opaque token":    "rt-" + sentinel,
	} {
		_, err := ParseJWT(bad)
		if !errors.Is(err, ErrNotJWT) {
			t.Errorf("%s: want ErrNotJWT, got %v", name, err)
			continue
		}
		noLeak(t, name, err.Error())
	}
}

func TestDecideTable(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := DefaultPolicy()
	file := func(exp *time.Time, lr *time.Time) *AuthFile {
		access := "opaque"
		if exp != nil {
			access = accessJWT(*exp)
		}
		js := `{"auth_mode":"chatgpt","tokens":{"id_token":"i","access_token":"` + access + `","refresh_token":"r","account_id":"a"}`
		if lr != nil {
			js += `,"last_refresh":"` + FormatTimestamp(*lr) + `"`
		}
		f, err := ParseAuthFile([]byte(js + "}"))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	apikey, _ := ParseAuthFile([]byte(`{"OPENAI_API_KEY":"sk"}`))

	cases := []struct {
		name    string
		f       *AuthFile
		refresh bool
		next    time.Time
		reason  string
	}{
		{"no file", nil, false, now.Add(6 * time.Hour), "no auth.json"},
		{"api key", apikey, false, now.Add(6 * time.Hour), "API-key"},
		{"fresh: interval first", file(at(30*time.Hour), at(-time.Hour)), false, now.Add(6 * time.Hour), "fresh"},
		{"fresh: margin before interval", file(at(5*time.Hour), at(-20*time.Hour)), false, now.Add(time.Hour), "fresh"},
		{"fresh: stale point before interval", file(at(100*time.Hour), at(-7*24*time.Hour+2*time.Hour)), false, now.Add(2 * time.Hour), "fresh"},
		{"exp exactly at margin", file(at(4*time.Hour), at(-20*time.Hour)), true, now, "expires in 4h (margin 4h)"},
		{"exp within margin", file(at(time.Hour), at(-time.Hour)), true, now, "expires in"},
		{"already expired", file(at(-time.Hour), at(-time.Hour)), true, now, "expired 1h ago"},
		{"stale exactly", file(at(100*time.Hour), at(-7*24*time.Hour)), true, now, "stale after"},
		{"stale, exp unreadable", file(nil, at(-8*24*time.Hour)), true, now, "stale"},
		{"exp unreadable, fresh last_refresh", file(nil, at(-time.Hour)), false, now.Add(6 * time.Hour), "fresh"},
		{"exp readable, no last_refresh", file(at(30*time.Hour), nil), false, now.Add(6 * time.Hour), "fresh"},
		{"neither readable", file(nil, nil), true, now, "neither"},
		{"both reasons", file(at(time.Hour), at(-8*24*time.Hour)), true, now, "; last_refresh"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(c.f, now, p)
			if v.Refresh != c.refresh || !v.NextCheck.Equal(c.next) || !strings.Contains(v.Reason, c.reason) {
				t.Fatalf("got refresh=%v next=%v reason=%q; want %v %v %q", v.Refresh, v.NextCheck, v.Reason, c.refresh, c.next, c.reason)
			}
			// Pure: same input, same output.
			if v2 := Decide(c.f, now, p); v2 != v {
				t.Fatal("Decide is not deterministic")
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	if p.Interval != 21600*time.Second || p.SafetyMargin != 14400*time.Second || p.StaleAfter != 604800*time.Second {
		t.Fatalf("defaults are not the seed's: %+v", p)
	}
	if err := (Policy{Interval: 0, SafetyMargin: -1, StaleAfter: 0}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "interval") || !strings.Contains(err.Error(), "margin") || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("want all three named: %v", err)
	}
}
