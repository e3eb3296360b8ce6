package authwatch

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/molecule-ai/codex-launch/internal/human"
)

// HealthInput is what `codex-launch health` knows: auth.json, the status file
// and the clock. The judgement is a pure function of it so that every state
// can be tested without a file system or a watchdog.
type HealthInput struct {
	// Auth is auth.json, nil when there is none.
	Auth *AuthFile
	// AuthErr is set when auth.json exists but cannot be read or parsed.
	AuthErr error
	// Status is the status file, nil when there is none.
	Status *Status
	// StatusErr is set when the status file exists but cannot be read.
	StatusErr error
	Now       time.Time
	// Interval is the refresh interval health was configured with: for a
	// status without next_check_at (a single pass), older than two
	// intervals is stale. A loop's status is judged against its own
	// next_check_at plus StatusGrace instead.
	Interval time.Duration
	// Rescued: CODEX_HOME holds RescueFileName, a refreshed credential
	// not yet in auth.json.
	Rescued bool
}

// StatusGrace is how long past its own next_check_at a loop's status may
// be before health calls the watchdog wedged: the jitter (at most 30 s), a
// pass's lock waits, POST and recheck fit well inside it.
const StatusGrace = 2 * time.Minute

// HealthState names the outcome, for scripts and tests.
type HealthState string

const (
	HealthOK           HealthState = "healthy"
	HealthNoCredential HealthState = "no_credential"
	HealthUnreadable   HealthState = "unreadable"
	HealthExpired      HealthState = "expired"
	HealthDead         HealthState = "dead"
	HealthNoStatus     HealthState = "no_status"
	HealthStaleStatus  HealthState = "stale_status"
	HealthUnwritten    HealthState = "unwritten"
	HealthCannotWrite  HealthState = "cannot_write"
)

// Health is the verdict: OK means the credential is usable and the watchdog
// alive. Reason is one token-free line for the operator.
type Health struct {
	OK     bool
	State  HealthState
	Reason string
}

// JudgeHealth decides whether a container's credential is healthy. It exists
// because the failure it guards against is silent: a wedged watchdog
// and a credential that quietly runs out. So it fails when the credential is
// absent, unreadable, expired or dead (a permanent refresh failure on the
// file as it still is), and when the watchdog has not written its status for
// more than two intervals. A login with nothing to refresh (API key, agent
// identity) is healthy without a watchdog.
func JudgeHealth(in HealthInput) Health {
	bad := func(s HealthState, format string, args ...any) Health {
		return Health{State: s, Reason: fmt.Sprintf(format, args...)}
	}
	if in.AuthErr != nil {
		return bad(HealthUnreadable, "auth.json cannot be read: %v", in.AuthErr)
	}
	if st := in.Status; in.Rescued || st != nil && st.Credential == credUnwritten {
		why := "a refreshed credential is kept in " + RescueFileName
		if st != nil && st.Credential == credUnwritten {
			why = st.Reason
		}
		return bad(HealthUnwritten, "%s; the watchdog retries the write (free space, or chattr -i auth.json)", why)
	}
	if in.Auth == nil {
		return bad(HealthNoCredential, "no auth.json in CODEX_HOME: there is no credential")
	}
	switch m := in.Auth.Mode(); m {
	case ModeAPIKey, ModeAgentIdentity:
		return Health{OK: true, State: HealthOK, Reason: fmt.Sprintf("%s login: no OAuth token, nothing to refresh", m)}
	}
	if Tokenless(in.Auth) {
		return bad(HealthNoCredential, "auth.json holds no tokens (a login without a credential): log in again (codex login)")
	}
	if st := in.Status; st != nil && st.Credential == credUnreadable {
		return bad(HealthUnreadable, "the watchdog cannot read auth.json: %s", st.Reason)
	}
	if st := in.Status; st != nil && st.LastErrorKind == KindCannotCommit {
		return bad(HealthCannotWrite, "the watchdog cannot refresh: %s", st.Reason)
	}

	// A permanent failure recorded for the file as it still is: the refresh
	// token is dead and only a new login helps. A file changed since (a new
	// login) is judged afresh.
	if st := in.Status; st != nil && (st.Credential == credDead || st.OutcomeCode == int(OutcomePermanent)) && sameLastRefresh(st, in.Auth) {
		why := st.Reason
		if why == "" {
			why = st.WatchdogLastOutcome
		}
		return bad(HealthDead, "credential is dead: %s", why)
	}

	exp, hasExp := in.Auth.AccessExpiry()
	if hasExp && !exp.After(in.Now) {
		return bad(HealthExpired, "access token expired at %s (%s) and was not refreshed",
			exp.UTC().Format(time.RFC3339), human.Relative(exp, in.Now))
	}

	if in.StatusErr != nil {
		return bad(HealthNoStatus, "status file cannot be read: %v", in.StatusErr)
	}
	if in.Status == nil {
		return bad(HealthNoStatus, "no status file: the watchdog has not run")
	}
	ran, err := time.Parse(time.RFC3339, in.Status.WatchdogLastRunISO)
	if err != nil {
		return bad(HealthStaleStatus, "status file has no readable watchdog_last_run_iso (%q)", in.Status.WatchdogLastRunISO)
	}
	if next, err := time.Parse(time.RFC3339, in.Status.NextCheckAt); err == nil && in.Status.WatchdogLoop {
		if in.Now.After(next.Add(StatusGrace)) {
			return bad(HealthStaleStatus, "watchdog last ran %s and meant to look again %s: it is wedged or gone",
				human.Relative(ran, in.Now), human.Relative(next, in.Now))
		}
	} else if limit := 2 * in.Interval; in.Now.Sub(ran) > limit {
		return bad(HealthStaleStatus, "watchdog last ran %s, more than two intervals (%s) ago: it is wedged or gone",
			human.Relative(ran, in.Now), human.Duration(limit))
	}

	reason := "credential usable"
	if hasExp {
		reason += fmt.Sprintf(" (access token valid until %s)", exp.UTC().Format(time.RFC3339))
	}
	if ok, why := in.Auth.Refreshable(); !ok {
		reason += "; not refreshed by codex-launch: " + why
	}
	reason += "; watchdog ran " + human.Relative(ran, in.Now)
	if n := in.Status.ConsecutiveFailures; n > 0 {
		reason += fmt.Sprintf("; %d consecutive transient failure(s), retrying", n)
	}
	return Health{OK: true, State: HealthOK, Reason: reason}
}

// Tokenless reports whether f is a ChatGPT login without any token (`{}`
// reads as one): nothing the CLI could use.
func Tokenless(f *AuthFile) bool {
	tk, m := f.Tokens(), f.Mode()
	return (m == ModeChatGPT || m == ModeChatGPTTokens) && tk.AccessToken == "" && tk.RefreshToken == ""
}

// Unusable says why the credential in CODEX_HOME gives the CLI nothing to
// work with ("" when it is usable): missing, unreadable (by this process),
// malformed, or tokenless. A dead refresh token is the watchdog's verdict,
// not the file's.
func (h Home) Unusable() string {
	f, _, err := h.Read()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "there is no auth.json"
	case err != nil:
		return "auth.json cannot be used: " + err.Error()
	case Tokenless(f):
		return "auth.json holds no tokens"
	}
	return ""
}

// sameLastRefresh reports whether the status was written about the auth.json
// that is there now, compared by last_refresh (the status never holds a
// token, and a new login or a refresh by the CLI always moves last_refresh).
func sameLastRefresh(st *Status, f *AuthFile) bool {
	lr, ok := f.LastRefresh()
	if st.LastRefresh == "" {
		return !ok
	}
	if !ok {
		return false
	}
	// Parsed as auth.json's own last_refresh is: the status copies the
	// file's text, which may be in any form a writer of auth.json used.
	t, ok := parseTimestamp(st.LastRefresh)
	return ok && t.Equal(lr)
}
