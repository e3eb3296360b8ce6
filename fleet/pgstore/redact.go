package pgstore

import (
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Compiled on first use, not at start: the launcher and every health check
// link this package.
var (
	// password=... in a key/value connection string, quoted or not.
	kvPassword = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]+)`)
	})
	// user:password@ inside any URL-looking text (also inside error messages).
	urlPassword = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s]*)@`)
	})
)

// Redact removes passwords from a connection string (URL or key/value form)
// or from any text that may contain one, so it can be logged or shown.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	s = urlPassword().ReplaceAllString(s, "${1}xxxxx@")
	return kvPassword().ReplaceAllString(s, "${1}xxxxx")
}

func replaceAll(s, secret, with string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, with)
	if esc := url.QueryEscape(secret); esc != secret {
		s = strings.ReplaceAll(s, esc, with)
	}
	return s
}
