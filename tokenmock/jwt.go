package tokenmock

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Sentinel is embedded in every token the mock mints (in the signature
// segment of each JWT and in every refresh token), so that a test can search
// any output for it: the string must never appear in a log line, a status
// file, an error, argv or the environment of any process.
const Sentinel = "tmSENTINELtok"

// AuthClaim is the JWT claim under which the CLI reads the ChatGPT account,
// plan and user.
const AuthClaim = "https://api.openai.com/auth"

// MintJWT returns a JWT with the given claims as payload: three base64url
// segments without padding, as the CLI reads them. The signature is not a
// signature (the CLI never checks it); it carries Sentinel so that a leaked
// token is recognisable.
func MintJWT(claims map[string]any) string {
	return mintJWT(claims, Sentinel+"sig")
}

func mintJWT(claims map[string]any, sig string) string {
	header := []byte(`{"alg":"RS256","typ":"JWT"}`)
	payload, err := json.Marshal(claims)
	if err != nil {
		// Claims are built by tests from plain values; a value JSON cannot
		// encode is a bug in the test itself.
		panic(fmt.Sprintf("tokenmock: claims not encodable: %v", err))
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + sig
}

// Claims returns the claims the mock puts in its tokens: exp, iat, email, and
// the ChatGPT account, plan and user under AuthClaim. Tests add or delete keys
// before passing the map to MintJWT.
func Claims(account, email string, exp time.Time) map[string]any {
	return map[string]any{
		"exp":   exp.Unix(),
		"iat":   exp.Add(-time.Hour).Unix(),
		"email": email,
		AuthClaim: map[string]any{
			"chatgpt_account_id": account,
			"chatgpt_plan_type":  "plus",
			"chatgpt_user_id":    "user-" + account,
		},
	}
}

// DecodeClaims reads the payload of a JWT without checking anything else. It
// exists for tests that want to look at what the mock (or the code under test)
// wrote.
func DecodeClaims(token string) (map[string]any, error) {
	var parts [3]string
	n := 0
	start := 0
	for i := 0; i < len(token) && n < 2; i++ {
		if token[i] == '.' {
			parts[n] = token[start:i]
			n++
			start = i + 1
		}
	}
	if n != 2 {
		return nil, fmt.Errorf("not a JWT: want 3 dot-separated segments")
	}
	parts[2] = token[start:]
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT payload is not base64url: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("JWT payload is not a JSON object: %w", err)
	}
	return m, nil
}
