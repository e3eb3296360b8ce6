// Package authwatch keeps a Codex CLI ChatGPT login alive: it reads and writes
// $CODEX_HOME/auth.json exactly as the CLI does, decides when the OAuth tokens
// need a refresh, redeems the single-use refresh token at the token endpoint
// under the CLI's own lock protocol, and reports what it did in a status file
// that never holds a token.
package authwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/molecule-ai/codex-launch/internal/dirhandle"
)

// ErrMalformed is wrapped by every error that says auth.json (or a value
// inside it) is not what the CLI writes. Callers test with errors.Is.
var ErrMalformed = errors.New("malformed auth.json")

// Mode is the login kind of an auth.json, spelled as the CLI spells auth_mode.
type Mode string

// The modes the CLI writes. ModeUnknown is an auth_mode value codex-launch
// does not know (a newer CLI): it is never refreshed.
const (
	ModeUnknown       Mode = ""
	ModeChatGPT       Mode = "chatgpt"
	ModeChatGPTTokens Mode = "chatgptAuthTokens"
	ModeAPIKey        Mode = "apikey"
	ModeAgentIdentity Mode = "agentIdentity"
)

// The keys codex-launch understands. Everything else is carried verbatim.
const (
	keyAuthMode     = "auth_mode"
	keyAPIKey       = "OPENAI_API_KEY"
	keyTokens       = "tokens"
	keyLastRefresh  = "last_refresh"
	keyIDToken      = "id_token"
	keyAccessToken  = "access_token"
	keyRefreshToken = "refresh_token"
	keyAccountID    = "account_id"
)

// member is one key of a JSON object with its value exactly as it was read
// (or as codex-launch encoded it), so that values codex-launch does not
// interpret survive a rewrite byte for byte.
type member struct {
	key string
	raw json.RawMessage
}

// object is an ordered JSON object: the known keys are looked up by name, the
// unknown ones are written back in the order they were read.
type object struct {
	known   map[string]json.RawMessage
	unknown []member
}

// AuthFile is one auth.json. It is immutable once parsed: Apply returns a copy,
// so a file read for a decision can never be half-updated.
type AuthFile struct {
	top    object
	tokens *object // nil when the file has no tokens object (or tokens is null)

	// Decoded views of the known values, for the decisions.
	authMode    string
	hasAuthMode bool
	apiKeySet   bool // OPENAI_API_KEY present and not null, as the CLI's is_some()
	tok         Tokens
	lastRefresh time.Time
	hasLR       bool
}

// Tokens are the OAuth tokens of a ChatGPT login. Never log or print them.
type Tokens struct {
	IDToken, AccessToken, RefreshToken, AccountID string
}

// ParseAuthFile decodes auth.json. Every key the CLI knows is read; every key
// it does not know (top level or inside tokens) is kept verbatim with its
// value, so a newer CLI's data survives a refresh. Errors wrap ErrMalformed and
// name the offending key, never its value.
func ParseAuthFile(data []byte) (*AuthFile, error) {
	if len(data) > MaxAuthFileSize {
		// Whatever the source (a file, the shared store, a variable).
		return nil, fmt.Errorf("auth.json: %w: %d bytes, the limit is %d", dirhandle.ErrTooLarge, len(data), MaxAuthFileSize)
	}
	top, err := parseObject(data, "auth.json", topKeys)
	if err != nil {
		return nil, err
	}
	f := &AuthFile{top: *top}
	if raw, ok := top.known[keyAuthMode]; ok {
		s, isNull, err := rawString(raw, keyAuthMode)
		if err != nil {
			return nil, err
		}
		f.authMode, f.hasAuthMode = s, !isNull && s != ""
	}
	if raw, ok := top.known[keyAPIKey]; ok {
		_, isNull, err := rawString(raw, keyAPIKey)
		if err != nil {
			return nil, err
		}
		f.apiKeySet = !isNull
	}
	if raw, ok := top.known[keyTokens]; ok && !isJSONNull(raw) {
		tok, err := parseObject(raw, keyTokens, tokensKeys)
		if err != nil {
			return nil, err
		}
		f.tokens = tok
		fields := []struct {
			key string
			dst *string
		}{
			{keyIDToken, &f.tok.IDToken},
			{keyAccessToken, &f.tok.AccessToken},
			{keyRefreshToken, &f.tok.RefreshToken},
			{keyAccountID, &f.tok.AccountID},
		}
		for _, fl := range fields {
			if raw, ok := tok.known[fl.key]; ok {
				s, _, err := rawString(raw, "tokens."+fl.key)
				if err != nil {
					return nil, err
				}
				*fl.dst = s
			}
		}
	}
	if raw, ok := top.known[keyLastRefresh]; ok {
		s, _, err := rawString(raw, keyLastRefresh)
		if err != nil {
			return nil, err
		}
		// An unreadable timestamp is not fatal: Decide treats it as
		// unknown, and the raw value is written back untouched.
		if t, ok := parseTimestamp(s); ok {
			f.lastRefresh, f.hasLR = t, true
		}
	}
	return f, nil
}

// knownKeys are the keys each object level interprets. Their order is the
// order the CLI writes them in.
var (
	topKeys    = []string{keyAuthMode, keyAPIKey, keyTokens, keyLastRefresh}
	tokensKeys = []string{keyIDToken, keyAccessToken, keyRefreshToken, keyAccountID}
)

// parseObject reads one JSON object; what names it in errors, known are the
// keys it interprets.
func parseObject(data []byte, what string, known []string) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, what, sanitizeJSONError(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: %s is not a JSON object", ErrMalformed, what)
	}
	obj := &object{known: map[string]json.RawMessage{}}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, what, sanitizeJSONError(err))
		}
		key, ok := kt.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s: object key is not a string", ErrMalformed, what)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: %s: value of key %q: %v", ErrMalformed, what, safeKey(key), sanitizeJSONError(err))
		}
		if slices.Contains(known, key) {
			if _, dup := obj.known[key]; dup {
				return nil, fmt.Errorf("%w: %s: duplicate key %q", ErrMalformed, what, key)
			}
			obj.known[key] = raw
			continue
		}
		obj.unknown = append(obj.unknown, member{key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, what, sanitizeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: %s: data after the top-level object", ErrMalformed, what)
	}
	return obj, nil
}

// sanitizeJSONError keeps the position of a syntax error but never the text
// around it: a broken auth.json may have a token right next to the error.
func sanitizeJSONError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("unexpected %s at byte %d", te.Value, te.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON"
	}
	return "invalid JSON"
}

// safeKey bounds an unknown key for an error message; keys are names, not
// secrets, but a garbage file can make them arbitrarily long.
func safeKey(k string) string {
	if len(k) > 40 {
		return k[:40] + "..."
	}
	return k
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// rawString decodes a value that must be a JSON string or null.
func rawString(raw json.RawMessage, key string) (s string, isNull bool, err error) {
	if isJSONNull(raw) {
		return "", true, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%w: %s must be a string or null", ErrMalformed, key)
	}
	return s, false, nil
}

// parseTimestamp reads last_refresh as the CLI versions have written it:
// RFC 3339 with `Z` or `+00:00`, any number of fractional digits, and, as
// hand-written files have it, no zone at all (taken as UTC).
func parseTimestamp(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// FormatTimestamp writes a time as the CLI writes last_refresh (chrono's
// RFC 3339 "AutoSi" form with `Z`): UTC, and as many fractional digits as the
// value needs among 0, 3, 6 or 9.
func FormatTimestamp(t time.Time) string {
	t = t.UTC()
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return t.Format("2006-01-02T15:04:05Z")
	case ns%1_000_000 == 0:
		return t.Format("2006-01-02T15:04:05.000Z")
	case ns%1_000 == 0:
		return t.Format("2006-01-02T15:04:05.000000Z")
	default:
		return t.Format("2006-01-02T15:04:05.000000000Z")
	}
}

// Marshal encodes the file as the CLI writes it (serde_json's pretty printer):
// auth_mode (left out when the file has none), OPENAI_API_KEY (always; null
// when unused), tokens {id_token, access_token, refresh_token, account_id
// (always; null when unknown)}, last_refresh, then the keys codex-launch does
// not know in their original order; two-space indent, no trailing newline, no
// HTML escaping. A file the CLI wrote comes back byte for byte; a known key
// the file had is written back even when its value is null, so nothing the
// file said is lost.
func (f *AuthFile) Marshal() []byte {
	var b bytes.Buffer
	// member starts "key": in an object; *first says no member came yet.
	member := func(first *bool, key string, depth int) {
		if !*first {
			b.WriteString(",")
		}
		*first = false
		b.WriteString("\n")
		b.WriteString(strings.Repeat("  ", depth))
		b.Write(appendJSONString(nil, key))
		b.WriteString(": ")
	}
	topFirst := true
	field := func(key string, raw json.RawMessage) {
		member(&topFirst, key, 1)
		writeRaw(&b, raw, 1)
	}
	b.WriteString("{")
	if raw, ok := f.top.known[keyAuthMode]; ok {
		field(keyAuthMode, raw)
	}
	apiKey := f.top.known[keyAPIKey]
	if apiKey == nil {
		apiKey = json.RawMessage("null")
	}
	field(keyAPIKey, apiKey)
	if f.tokens != nil {
		member(&topFirst, keyTokens, 1)
		b.WriteString("{")
		tokFirst := true
		tfield := func(key string, raw json.RawMessage) {
			member(&tokFirst, key, 2)
			writeRaw(&b, raw, 2)
		}
		for _, k := range tokensKeys {
			raw, ok := f.tokens.known[k]
			if !ok {
				if k != keyAccountID {
					continue // never invent a token the file did not have
				}
				raw = json.RawMessage("null") // the CLI always writes account_id
			}
			tfield(k, raw)
		}
		for _, m := range f.tokens.unknown {
			tfield(m.key, m.raw)
		}
		b.WriteString("\n  }") // never empty: account_id is always there
	} else if raw, ok := f.top.known[keyTokens]; ok {
		field(keyTokens, raw) // an explicit null stays
	}
	if raw, ok := f.top.known[keyLastRefresh]; ok {
		field(keyLastRefresh, raw)
	}
	for _, m := range f.top.unknown {
		field(m.key, m.raw)
	}
	b.WriteString("\n}")
	return b.Bytes()
}

// writeRaw re-indents a value for its depth. String tokens are copied as they
// were, escapes included, so nothing inside a value changes.
func writeRaw(b *bytes.Buffer, raw json.RawMessage, depth int) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		b.Write(raw) // cannot happen for values the decoder accepted
		return
	}
	prefix := strings.Repeat("  ", depth)
	if err := json.Indent(b, compact.Bytes(), prefix, "  "); err != nil {
		b.Write(compact.Bytes())
	}
}

// appendJSONString encodes s as serde_json does: only `"`, `\` and control
// characters are escaped (\b \t \n \f \r short, others \u00XX); everything else,
// U+2028 and U+2029 included, is written as UTF-8.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			if e := strings.IndexByte("\b\f\n\r\t", c); e >= 0 {
				dst = append(dst, '\\', "bfnrt"[e])
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Mode is the login kind decided as the CLI decides it: auth_mode when set;
// otherwise API-key mode when OPENAI_API_KEY is present (even empty: the CLI
// tests is_some()), and ChatGPT mode in every other case.
func (f *AuthFile) Mode() Mode {
	if f.hasAuthMode {
		switch m := Mode(f.authMode); m {
		case ModeChatGPT, ModeChatGPTTokens, ModeAPIKey, ModeAgentIdentity:
			return m
		default:
			return ModeUnknown
		}
	}
	if f.apiKeySet {
		return ModeAPIKey
	}
	return ModeChatGPT
}

// Refreshable says whether codex-launch may redeem this file's refresh token,
// and if not, why (the reason never holds a token). Only ModeChatGPT is: the
// tokens of chatgptAuthTokens belong to the host application that supplied
// them and refreshes them itself (docs/authwatch.md), and API-key and
// agent-identity logins have no OAuth refresh token.
func (f *AuthFile) Refreshable() (ok bool, reason string) {
	switch f.Mode() {
	case ModeChatGPT:
	case ModeChatGPTTokens:
		return false, "auth_mode chatgptAuthTokens: tokens supplied and refreshed by the host application, not by the refresh-token grant"
	case ModeAPIKey:
		if f.hasAuthMode {
			return false, "auth_mode apikey: API-key login has no OAuth token to refresh"
		}
		return false, "OPENAI_API_KEY set and no auth_mode: API-key login has no OAuth token to refresh"
	case ModeAgentIdentity:
		return false, "auth_mode agentIdentity: agent identity login has no OAuth refresh token"
	default:
		return false, fmt.Sprintf("auth_mode %q is not one codex-launch knows; not refreshing", safeKey(f.authMode))
	}
	if f.tokens == nil {
		return false, "ChatGPT login without tokens"
	}
	if f.tok.RefreshToken == "" {
		return false, "ChatGPT login without a refresh_token"
	}
	return true, ""
}

// lastRefreshText is last_refresh as the file spells it ("" when absent or
// not a string), for the status file.
func (f *AuthFile) lastRefreshText() string {
	raw, ok := f.top.known[keyLastRefresh]
	if !ok {
		return ""
	}
	s, _, err := rawString(raw, keyLastRefresh)
	if err != nil {
		return ""
	}
	return s
}

// Tokens returns the OAuth tokens (empty strings where absent).
func (f *AuthFile) Tokens() Tokens { return f.tok }

// LastRefresh is last_refresh, when present and readable.
func (f *AuthFile) LastRefresh() (time.Time, bool) { return f.lastRefresh, f.hasLR }

// AccessExpiry is the access token's exp claim, when it has a readable one.
func (f *AuthFile) AccessExpiry() (time.Time, bool) {
	if f.tok.AccessToken == "" {
		return time.Time{}, false
	}
	c, err := ParseJWT(f.tok.AccessToken)
	if err != nil || !c.HasExpiry {
		return time.Time{}, false
	}
	return c.Expiry, true
}

// AccessLifetime is how long the access token lives from when it was
// issued: from the later of its iat claim and last_refresh (the CLI writes
// last_refresh when it stores a new token) to its exp. The later start
// gives the shorter span, so a margin taken from it can never make a token
// due the moment it is stored. false when neither start is known, or the
// span is not positive.
func (f *AuthFile) AccessLifetime() (time.Duration, bool) {
	if f.tok.AccessToken == "" {
		return 0, false
	}
	c, err := ParseJWT(f.tok.AccessToken)
	if err != nil || !c.HasExpiry {
		return 0, false
	}
	from, ok := c.IssuedAt, c.HasIssuedAt
	if lr, hasLR := f.LastRefresh(); hasLR && (!ok || lr.After(from)) {
		from, ok = lr, true
	}
	if !ok || !c.Expiry.After(from) {
		return 0, false
	}
	return c.Expiry.Sub(from), true
}

// AccountID is tokens.account_id, or else the id_token's chatgpt_account_id
// claim (what the CLI shows for an old file without account_id).
func (f *AuthFile) AccountID() string {
	if f.tok.AccountID != "" {
		return f.tok.AccountID
	}
	if f.tok.IDToken != "" {
		if c, err := ParseJWT(f.tok.IDToken); err == nil {
			return c.AccountID
		}
	}
	return ""
}

// Apply returns a copy of f with the tokens the endpoint returned (a missing
// one keeps its old value, as in the CLI) and last_refresh set to now.
// tokens.account_id is never touched: the CLI refuses to adopt a file whose
// account changed. Unknown keys are carried over.
func (f *AuthFile) Apply(r TokenResponse, now time.Time) *AuthFile {
	n := f.clone()
	if n.tokens == nil {
		n.tokens = &object{known: map[string]json.RawMessage{}}
		n.top.known[keyTokens] = json.RawMessage("{}") // presence marker
	}
	set := func(key, val string, dst *string) {
		if val == "" {
			return
		}
		n.tokens.known[key] = json.RawMessage(appendJSONString(nil, val))
		*dst = val
	}
	set(keyIDToken, r.IDToken, &n.tok.IDToken)
	set(keyAccessToken, r.AccessToken, &n.tok.AccessToken)
	set(keyRefreshToken, r.RefreshToken, &n.tok.RefreshToken)
	now = now.UTC()
	n.top.known[keyLastRefresh] = json.RawMessage(appendJSONString(nil, FormatTimestamp(now)))
	n.lastRefresh, n.hasLR = now, true
	return n
}

func (f *AuthFile) clone() *AuthFile {
	n := *f
	n.top = f.top.clone()
	if f.tokens != nil {
		t := f.tokens.clone()
		n.tokens = &t
	}
	return &n
}

func (o object) clone() object {
	n := object{known: make(map[string]json.RawMessage, len(o.known))}
	for k, v := range o.known {
		n.known[k] = v
	}
	n.unknown = append([]member(nil), o.unknown...)
	return n
}

// UnknownKeys lists the top-level and tokens keys codex-launch carries without
// interpreting (tokens keys prefixed "tokens."), for logs and status.
func (f *AuthFile) UnknownKeys() []string {
	var out []string
	for _, m := range f.top.unknown {
		out = append(out, m.key)
	}
	if f.tokens != nil {
		for _, m := range f.tokens.unknown {
			out = append(out, "tokens."+m.key)
		}
	}
	return out
}
