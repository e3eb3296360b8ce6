package authwatch

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrNotJWT is wrapped by ParseJWT's errors: the string is not a readable
// JWT (three non-empty dot-separated parts whose second is a base64url JSON
// object).
var ErrNotJWT = errors.New("not a JWT")

// maxJWTSize bounds a token ParseJWT decodes: real ones are a few KiB.
const maxJWTSize = 64 << 10

// Claims are the JWT claims the CLI reads. Signatures are not checked (the CLI
// does not check them either): the claims only drive timing and display.
type Claims struct {
	Expiry    time.Time
	HasExpiry bool
	// IssuedAt is the iat claim, when readable.
	IssuedAt    time.Time
	HasIssuedAt bool
	Email       string
	AccountID   string // https://api.openai.com/auth chatgpt_account_id
	PlanType    string // https://api.openai.com/auth chatgpt_plan_type
	UserID      string // https://api.openai.com/auth chatgpt_user_id (or user_id)
}

const authClaim = "https://api.openai.com/auth"

// ParseJWT reads a JWT's payload the way the CLI does (base64url without
// padding; padding and the standard alphabet are tolerated). Errors never
// contain the token.
func ParseJWT(token string) (Claims, error) {
	if len(token) > maxJWTSize {
		return Claims{}, fmt.Errorf("%w: %d bytes, more than the %d a token may have", ErrNotJWT, len(token), maxJWTSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Claims{}, fmt.Errorf("%w: want three non-empty dot-separated parts", ErrNotJWT)
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not base64url", ErrNotJWT)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return Claims{}, fmt.Errorf("%w: payload is not a JSON object", ErrNotJWT)
	}
	var c Claims
	if v, ok := raw["exp"]; ok {
		if t, ok := numericDate(v); ok {
			c.Expiry, c.HasExpiry = t, true
		}
	}
	if v, ok := raw["iat"]; ok {
		if t, ok := numericDate(v); ok {
			c.IssuedAt, c.HasIssuedAt = t, true
		}
	}
	c.Email = claimString(raw, "email")
	if c.Email == "" {
		// The CLI falls back to the profile claim for the e-mail.
		if prof, ok := claimObject(raw, "https://api.openai.com/profile"); ok {
			c.Email = claimString(prof, "email")
		}
	}
	if auth, ok := claimObject(raw, authClaim); ok {
		c.AccountID = claimString(auth, "chatgpt_account_id")
		c.PlanType = claimString(auth, "chatgpt_plan_type")
		c.UserID = claimString(auth, "chatgpt_user_id")
		if c.UserID == "" {
			c.UserID = claimString(auth, "user_id")
		}
	}
	return c, nil
}

func decodeSegment(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// numericDate reads a JWT NumericDate (seconds since the epoch, integer or
// fraction). Out-of-range values count as unreadable.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return time.Time{}, false
	}
	if i, err := n.Int64(); err == nil {
		if i < -1<<40 || i > 1<<40 {
			return time.Time{}, false
		}
		return time.Unix(i, 0).UTC(), true
	}
	fl, err := n.Float64()
	if err != nil || math.IsNaN(fl) || math.IsInf(fl, 0) || fl < -(1<<40) || fl > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(fl)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

func claimString(m map[string]json.RawMessage, key string) string {
	raw, ok := m[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func claimObject(m map[string]json.RawMessage, key string) (map[string]json.RawMessage, bool) {
	raw, ok := m[key]
	if !ok {
		return nil, false
	}
	var o map[string]json.RawMessage
	if json.Unmarshal(raw, &o) != nil || o == nil {
		return nil, false
	}
	return o, true
}
