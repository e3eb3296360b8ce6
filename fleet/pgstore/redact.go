package pgstore

import (
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/molecule-ai/codex-launch/authwatch"
)

// Compiled on first use, not at start: the launcher and every health check
// link this package.
var (
	// password=... in a key/value connection string, quoted or not.
	kvPassword = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]+)`)
	})
)

// Redact removes passwords from a connection string (URL or key/value form)
// or from any text that may contain one, so it can be logged or shown. Text
// that is not one well-formed URL loses everything between its first "://"
// and its last "@": a password may hold any character (a space, a slash),
// so no pattern can tell where it ends, and the user name is a small loss.
// A URL that parses is trusted only as authwatch.ParseURL trusts it: a
// password with a "/", "?" or "#" ends the authority early, and the parse
// then puts the password in the host, path or query ("postgres://u:8/x@db"
// parses as host u, port 8).
func Redact(s string) string {
	if u, err := authwatch.ParseURL(s); err == nil && u.Scheme != "" && u.Host != "" {
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
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndex(s, "@"); j > i+len("://") {
			s = s[:i+len("://")] + "xxxxx" + s[j:]
		}
	}
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
