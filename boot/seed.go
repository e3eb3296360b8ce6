package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
)

// SeedAuth materialises CODEX_AUTH_JSON (else CODEX_CHATGPT_AUTH_JSON) into
// CODEX_HOME/auth.json without ever putting back a spent copy over a rotated
// credential: the variable replaces no file, an empty, unreadable or unusable
// one, another account, or a staler copy of its login
// (authwatch.ReplaceOnSeed); without evidence the file is kept. A variable
// that is not a valid credential is an error wrapping ErrInvalidCredential,
// the file untouched. Writes go through authwatch's commit (the CLI's lock protocol, temp file,
// fsync, rename, 0600). No value ever reaches the log or an error.
func SeedAuth(ctx context.Context, o SeedOptions) (SeedResult, error) {
	log := o.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var name, value string
	for _, n := range AuthVariables() {
		if v, ok := LookupEnv(o.Environ, n); ok && strings.TrimSpace(v) != "" {
			name, value = n, v
			break
		}
	}
	if name == "" {
		return SeedResult{Action: SeedNone}, nil
	}

	want, err := parseCredential(name, []byte(value))
	if err != nil {
		log.Error("seed: the credential variable is unusable; auth.json left untouched", "variable", name, "error", err)
		return SeedResult{}, err
	}

	home := authwatch.Home{Dir: o.Home, LockTimeout: o.LockTimeout, DeferDirSync: o.DeferDirSync}
	if o.Owner != nil {
		home.Owner = &authwatch.Owner{UID: o.Owner.UID, GID: o.Owner.GID}
	}
	res, err := commitSeed(ctx, home, want)
	if err != nil {
		return SeedResult{}, fmt.Errorf("write auth.json from %s: %w", name, err)
	}
	res.Variable = name
	switch res.Action {
	case SeedKept:
		log.Debug("seed: auth.json kept; the variable is an older or equal copy of the same login", "variable", name, "reason", res.Reason)
	case SeedAccount:
		log.Warn("seed: auth.json held another account; replaced by the variable", "variable", name, "reason", res.Reason)
	default:
		log.Debug("seed: auth.json written from the variable", "variable", name, "action", string(res.Action), "reason", res.Reason)
	}
	return res, nil
}

// commitSeed decides and writes. A file that holds a credential is replaced
// only through the file store's Update: under the CLI's auth.lock, decided on
// a fresh re-read, and vetoed if a newer credential lands meanwhile. A file
// that holds nothing usable (empty, unparseable, unreadable) has no refresh to
// race and is simply replaced through the atomic commit.
func commitSeed(ctx context.Context, home authwatch.Home, want *authwatch.AuthFile) (SeedResult, error) {
	_, raw, err := home.Read()
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, authwatch.ErrMalformed):
		reason := "auth.json unparseable"
		if len(bytes.TrimSpace(raw)) == 0 {
			reason = "auth.json empty"
		}
		return SeedResult{Action: SeedWritten, Reason: reason}, home.Commit(ctx, want)
	default:
		return SeedResult{Action: SeedWritten, Reason: "auth.json unreadable"}, home.Commit(ctx, want)
	}

	var res SeedResult
	err = authwatch.NewFileStore(home).Update(ctx, func(_ context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error) {
		res = decideSeed(cur, want)
		if res.Action == SeedKept {
			return nil, nil
		}
		return want, nil
	})
	if errors.Is(err, authwatch.ErrSuperseded) {
		return SeedResult{Action: SeedKept, Reason: "a newer credential was written meanwhile"}, nil
	}
	return res, err
}

// parseCredential validates the variable; its errors name the variable and
// the fault (ParseAuthFile's name a key or a byte offset), never the content.
func parseCredential(name string, data []byte) (*authwatch.AuthFile, error) {
	f, err := authwatch.ParseAuthFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s is %w: %v", name, ErrInvalidCredential, err)
	}
	if ok, why := usable(f); !ok {
		return nil, fmt.Errorf("%s is %w: %s", name, ErrInvalidCredential, why)
	}
	return f, nil
}

// usable: a refreshable ChatGPT login, or an API-key file.
func usable(f *authwatch.AuthFile) (bool, string) {
	ok, why := f.Refreshable()
	if ok || f.Mode() == authwatch.ModeAPIKey {
		return true, ""
	}
	return false, why
}

// decideSeed applies the seeding rules to the credential on disk (nil:
// none): another kind of login and API keys here, the rest is
// authwatch.ReplaceOnSeed.
func decideSeed(have, want *authwatch.AuthFile) SeedResult {
	if have != nil && have.Mode() != want.Mode() {
		if ok, _ := usable(have); ok {
			return SeedResult{Action: SeedAccount, Reason: "auth.json holds another kind of login (" + string(have.Mode()) + ")"}
		}
	}
	if have != nil && have.Mode() == authwatch.ModeAPIKey && want.Mode() == authwatch.ModeAPIKey {
		// An API key never rotates: a different one is the operator's new choice.
		if bytes.Equal(have.Marshal(), want.Marshal()) {
			return SeedResult{Action: SeedKept, Reason: "auth.json already holds this credential"}
		}
		return SeedResult{Action: SeedReplaced, Reason: "the variable holds another API key"}
	}
	v := authwatch.MayReplace(want, have, authwatch.ReplaceOnSeed)
	res := SeedResult{Action: SeedKept, Reason: string(v.Reason)}
	if v.By != "" {
		res.Reason += " (" + v.By + ")"
	}
	switch {
	case v.Reason == authwatch.ReasonOtherAccount:
		res.Action = SeedAccount
	case v.Reason == authwatch.ReasonNoCurrent || v.Reason == authwatch.ReasonUnusableCurrent:
		res.Action = SeedWritten
	case v.Replace:
		res.Action = SeedReplaced
	}
	return res
}
