package tokenmock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// FileOptions vary the auth.json that FormatAuthJSON writes, to build the
// fixtures of the other modes the CLI knows.
type FileOptions struct {
	// Mode is the auth_mode value; "" means "chatgpt". Ignored when OmitMode.
	Mode string
	// OmitMode leaves auth_mode out, as older CLIs (and the CLI itself, for
	// an empty mode) do. With no API key such a file is a ChatGPT login.
	OmitMode bool
	// APIKey, when not empty, is written as OPENAI_API_KEY instead of null.
	APIKey string
	// NoTokens writes "tokens": null (an API-key file).
	NoTokens bool
	// NoLastRefresh leaves last_refresh out.
	NoLastRefresh bool
	// Extra are keys a newer CLI writes that older readers do not know
	// (agent_identity, ...): appended after last_refresh, in order, with
	// their raw JSON values.
	Extra []RawKey
}

// RawKey is one extra top-level key with its value as raw JSON.
type RawKey struct {
	Key   string
	Value json.RawMessage
}

// AuthJSON returns c as the CLI writes auth.json for a ChatGPT login.
func (s *Server) AuthJSON(c Credential, lastRefresh time.Time) []byte {
	return FormatAuthJSON(c, lastRefresh, FileOptions{})
}

// FormatAuthJSON writes an auth.json byte for byte as the Codex CLI does:
// keys in the order auth_mode, OPENAI_API_KEY, tokens {id_token,
// access_token, refresh_token, account_id}, last_refresh; 2-space indent; no
// trailing newline; last_refresh in UTC with Z and the fraction chrono's
// serializer prints (none, 3, 6 or 9 digits).
func FormatAuthJSON(c Credential, lastRefresh time.Time, o FileOptions) []byte {
	var b bytes.Buffer
	b.WriteString("{\n")
	var fields []string
	if !o.OmitMode {
		mode := o.Mode
		if mode == "" {
			mode = "chatgpt"
		}
		fields = append(fields, `  "auth_mode": `+quote(mode))
	}
	if o.APIKey != "" {
		fields = append(fields, `  "OPENAI_API_KEY": `+quote(o.APIKey))
	} else {
		fields = append(fields, `  "OPENAI_API_KEY": null`)
	}
	if o.NoTokens {
		fields = append(fields, `  "tokens": null`)
	} else {
		fields = append(fields, "  \"tokens\": {\n"+
			"    \"id_token\": "+quote(c.IDToken)+",\n"+
			"    \"access_token\": "+quote(c.AccessToken)+",\n"+
			"    \"refresh_token\": "+quote(c.RefreshToken)+",\n"+
			"    \"account_id\": "+quote(c.AccountID)+"\n"+
			"  }")
	}
	if !o.NoLastRefresh {
		fields = append(fields, `  "last_refresh": `+quote(FormatTime(lastRefresh)))
	}
	for _, kv := range o.Extra {
		fields = append(fields, "  "+quote(kv.Key)+": "+indentRaw(kv.Value))
	}
	b.WriteString(strings.Join(fields, ",\n"))
	b.WriteString("\n}")
	return b.Bytes()
}

// FormatTime formats t as the CLI's last_refresh: RFC 3339 in UTC with Z,
// fraction digits in groups of three as needed (chrono's AutoSi).
func FormatTime(t time.Time) string {
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

func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // serde_json does not escape <, >, &
	if err := enc.Encode(s); err != nil {
		panic(fmt.Sprintf("tokenmock: encode string: %v", err))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// indentRaw re-indents a raw JSON value to sit at the second level of the
// file, as serde_json's pretty printer would.
func indentRaw(v json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, v, "  ", "  "); err != nil {
		panic(fmt.Sprintf("tokenmock: extra value is not JSON: %v", err))
	}
	return b.String()
}
