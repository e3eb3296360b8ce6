package secreturl

import (
	"errors"
	"strings"
	"testing"
)

// A URL is refused when an "@" lies outside what the parse took for user
// information, so that Redact never shows a password the parse left in the
// host, port, path or query.
func TestParseTrustsOnlyAWholeUserInfo(t *testing.T) {
	for raw, want := range map[string]error{
		"https://host/x":              nil,
		"https://user:pw@host/x?q=1":  nil,
		"postgres://u:8/pw@db/x":      ErrSplitUserInfo,
		"https://u:8?pw@host":         ErrSplitUserInfo,
		"https://u:8#pw@host":         ErrSplitUserInfo,
		"https://u:p@w@host/x":        ErrSplitUserInfo,
		"https://host/x?mail=a@b.com": ErrSplitUserInfo,
	} {
		u, err := Parse(raw)
		if !errors.Is(err, want) || (want == nil) != (u != nil) {
			t.Errorf("Parse(%q) = %v, %v; want error %v", raw, u, err, want)
		}
		if err == nil && strings.Contains(Redact(u), "pw") {
			t.Errorf("Redact of %q shows the password: %s", raw, Redact(u))
		}
	}
}

func TestShown(t *testing.T) {
	for raw, want := range map[string]string{
		"https://u:pw@host/x?token=pw": "https://host/x",
		"postgres://u:8/pw@db/x":       "(a URL whose password cannot be told apart; value hidden)",
		"abc":                          "abc",
	} {
		if got := Shown(raw); got != want {
			t.Errorf("Shown(%q) = %s, want %s", raw, got, want)
		}
	}
}

func TestMask(t *testing.T) {
	cases := map[string]string{
		"postgres://u:s3cret@db:5432/x?sslmode=disable": "s3cret",
		"postgres://u:s3cret@db/x?password=s3cret":      "s3cret",
		"host=db user=u password=s3cret dbname=x":       "s3cret",
		"host=db password='s3 cret' dbname=x":           "s3 cret",
		"dial postgres://u:s3cret@db:5432/x: refused":   "s3cret",
		// url.Parse refuses these; the text still loses the password.
		"postgres://u:pa ss@host/db":            "pa ss",
		"postgres://u:s3/cr@t@host/db":          "s3/cr@t",
		"bad `postgres://u:s3cr et@host/db`: x": "s3cr et",
		// url.Parse takes these, but a "/", "?" or "#" in the password ends
		// the authority early: the password lands in the host, path or query.
		"postgres://u:8/s3cret@host/db":   "s3cret",
		"postgres://u:8?s3cret@host/db":   "s3cret",
		"postgres://u:8#s3cret@host/db":   "s3cret",
		"postgres://u:a@b/s3cret@host/db": "s3cret",
	}
	for in, secret := range cases {
		if out := Mask(in); strings.Contains(out, secret) {
			t.Errorf("Mask(%q) = %q still holds the password", in, out)
		}
	}
	if got := Mask("postgres://u@db/x"); got != "postgres://u@db/x" {
		t.Errorf("no password: %q", got)
	}
	if got := Mask("postgres://u:pa ss@host/db"); got != "postgres://xxxxx@host/db" {
		t.Errorf("unparseable URL: %q", got)
	}
	if got := MaskSecret("pw=a b and a+b", "a b"); strings.Contains(got, "a b") || strings.Contains(got, "a+b") {
		t.Errorf("MaskSecret left the secret: %q", got)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "127.example.com": false, "10.0.0.1": false} {
		if IsLoopbackHost(h) != want {
			t.Errorf("IsLoopbackHost(%q) != %v", h, want)
		}
	}
}
