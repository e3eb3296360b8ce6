package authwatch

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/molecule-ai/codex-launch/internal/human"
)

// Policy says when a credential is due. cmd reads it from the variables that
// deployments already set: CODEX_AUTH_REFRESH_INTERVAL_SECONDS,
// CODEX_AUTH_SAFETY_MARGIN_SECONDS, CODEX_AUTH_STALE_AFTER_SECONDS.
type Policy struct {
	// Interval is the longest the watchdog sleeps between two looks.
	Interval time.Duration
	// SafetyMargin: refresh once the access token expires within it. It is
	// far wider than the CLI's own 5 minutes so that the watchdog refreshes
	// long before the CLI would, never racing it. For a token that lives
	// less than twice as long, the margin is half its lifetime
	// (EffectiveMargin): one refresh per half-life, whatever the interval.
	SafetyMargin time.Duration
	// StaleAfter: refresh once last_refresh is older (the CLI's own cliff is
	// 8 days; 7 days stays ahead of it).
	StaleAfter time.Duration
}

// DefaultPolicy looks every 6 h and refreshes 4 h before expiry or after 7
// days.
func DefaultPolicy() Policy {
	return Policy{Interval: 6 * time.Hour, SafetyMargin: 4 * time.Hour, StaleAfter: 7 * 24 * time.Hour}
}

// Validate rejects a policy that would spin or never look again.
func (p Policy) Validate() error {
	var errs []error
	if p.Interval <= 0 {
		errs = append(errs, fmt.Errorf("refresh interval must be positive, got %s", p.Interval))
	}
	if p.SafetyMargin < 0 {
		errs = append(errs, fmt.Errorf("safety margin must not be negative, got %s", p.SafetyMargin))
	}
	if p.StaleAfter <= 0 {
		errs = append(errs, fmt.Errorf("stale-after must be positive, got %s", p.StaleAfter))
	}
	return errors.Join(errs...)
}

// Verdict is Decide's answer.
type Verdict struct {
	Refresh bool
	// Reason is one token-free line for logs and the status file.
	Reason string
	// NextCheck is when to look again if nothing else happens: the earliest
	// of now+Interval, the moment the access token enters the safety margin
	// and the moment last_refresh becomes stale. Equal to now when Refresh.
	NextCheck    time.Time
	AccessExpiry time.Time
	HasExpiry    bool
}

// Decide is the refresh decision, a pure function of the file, the time and
// the policy: refresh when the access token's exp is
// within the safety margin, when last_refresh is older than stale-after, or
// when neither can be read. A file that is not a refreshable ChatGPT login (or
// nil: no file) is never due; Reason says why.
func Decide(f *AuthFile, now time.Time, p Policy) Verdict {
	v := Verdict{NextCheck: now.Add(p.Interval)}
	if f == nil {
		v.Reason = "no auth.json"
		return v
	}
	v.AccessExpiry, v.HasExpiry = f.AccessExpiry()
	if ok, why := f.Refreshable(); !ok {
		v.Reason = why
		return v
	}
	lr, hasLR := f.LastRefresh()
	var reasons []string
	if v.HasExpiry {
		left, margin := v.AccessExpiry.Sub(now), EffectiveMargin(f, p)
		if left <= margin {
			reasons = append(reasons, fmt.Sprintf("%s (margin %s)", expiry(v.AccessExpiry, now), human.Duration(margin)))
		} else if at := v.AccessExpiry.Add(-margin); at.Before(v.NextCheck) {
			v.NextCheck = at
		}
	}
	if hasLR {
		age := now.Sub(lr)
		if age >= p.StaleAfter {
			reasons = append(reasons, fmt.Sprintf("last_refresh is %s old (stale after %s)", human.Duration(age), human.Duration(p.StaleAfter)))
		} else if at := lr.Add(p.StaleAfter); at.Before(v.NextCheck) {
			v.NextCheck = at
		}
	}
	if !v.HasExpiry && !hasLR {
		reasons = append(reasons, "neither the access token's exp nor last_refresh is readable")
	}
	if len(reasons) > 0 {
		v.Refresh = true
		v.NextCheck = now
		v.Reason = strings.Join(reasons, "; ")
		return v
	}
	v.Reason = "fresh"
	if v.HasExpiry {
		v.Reason += ": " + expiry(v.AccessExpiry, now)
	}
	if hasLR {
		v.Reason += ", last_refresh " + human.Relative(lr, now)
	}
	return v
}

// EffectiveMargin is the safety margin Decide applies to f: the policy's,
// or half the access token's lifetime (AccessLifetime) when that is
// shorter. A token that lives shorter than the policy's margin would
// otherwise be due the moment it is issued, and every pass would spend a
// refresh token.
func EffectiveMargin(f *AuthFile, p Policy) time.Duration {
	if life, ok := f.AccessLifetime(); ok && life/2 < p.SafetyMargin {
		return life / 2
	}
	return p.SafetyMargin
}

// expiry says when the access token expires, or expired, as seen from now.
func expiry(exp, now time.Time) string {
	if exp.After(now) {
		return "access token expires " + human.Relative(exp, now)
	}
	return "access token expired " + human.Relative(exp, now)
}
