// Package secreturl holds the rules for URLs and connection strings that may
// carry a secret (a password in the user information or the query, a token
// in the query): how to parse one so that its password is never mistaken for
// a host or a path, and how to show one. Everything that names such a URL in
// a log, an error or a status goes through it.
package secreturl

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// ErrSplitUserInfo is Parse's refusal of a URL whose user information the
// parse did not take whole.
var ErrSplitUserInfo = errors.New(`an "@" falls outside the URL's user information (a password holding "/", "?" or "#" ends the host part early), so where a password ends cannot be told`)

// Parse is url.Parse for a URL that may carry a password, which must then
// never be shown: it also refuses (ErrSplitUserInfo) a URL whose one "@", if
// any, the parse did not put in the user information. A password holding
// "/", "?" or "#" ends the authority early: "https://u:8/x@host" parses as
// host u, port 8 and path "/x@host", with no user information, and Redact of
// that parse would show the password. url.Parse's own error quotes raw
// whole: callers must not show it.
func Parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if ats := strings.Count(raw, "@"); ats > 1 || ats == 1 && u.User == nil {
		return nil, ErrSplitUserInfo
	}
	return u, nil
}

// Redact is u without user information, query or fragment, for logs and
// messages: any of them may carry a secret. u must come from Parse, or the
// password may be in its host or path.
func Redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.User = "", "", nil
	return c.String()
}

// Shown is how a configured value that may be a URL appears in a log or a
// message: a URL with a host as Redact shows it, a URL whose password cannot
// be told apart not at all, anything else as it is.
func Shown(raw string) string {
	u, err := Parse(raw)
	switch {
	case err == nil && u.Host != "":
		return Redact(u)
	case errors.Is(err, ErrSplitUserInfo):
		return "(a URL whose password cannot be told apart; value hidden)"
	}
	return raw
}

// IsLoopbackHost reports whether h is localhost or a loopback address: the
// only hosts plain http may carry a secret to. A prefix test on "127." would
// pass a DNS name such as 127.example.com, which resolves anywhere.
func IsLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Compiled on first use, not at start: every command links this package.
var kvPassword = sync.OnceValue(func() *regexp.Regexp {
	// password=... in a key/value connection string, quoted or not.
	return regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]+)`)
})

// Mask removes passwords from a connection string (URL or key/value form) or
// from any text that may contain one (an error), keeping the rest, user name
// included, for a person to read. Text that is not one well-formed URL loses
// everything between its first "://" and its last "@": a password may hold
// any character (a space, a slash), so no pattern can tell where it ends, and
// the user name is a small loss. A URL that parses is trusted only as Parse
// trusts it.
func Mask(s string) string {
	if u, err := Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
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

// MaskSecret replaces every occurrence of secret in s, raw or query-escaped.
func MaskSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "xxxxx")
	if esc := url.QueryEscape(secret); esc != secret {
		s = strings.ReplaceAll(s, esc, "xxxxx")
	}
	return s
}
