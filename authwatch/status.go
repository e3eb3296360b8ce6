package authwatch

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is $CODEX_HOME/auth_refresh_status.json: what the watchdog knows, for
// operators, `codex-launch status` and health checks. It never holds a token.
// The first four keys keep the names and meanings that existing scrapers of
// this file rely on.
type Status struct {
	// LastRefresh is auth.json's last_refresh as written there ("" unknown).
	LastRefresh string `json:"last_refresh"`
	// LastRefreshAgeSeconds is its age at the last run; -1 when unknown.
	LastRefreshAgeSeconds int64 `json:"last_refresh_age_seconds"`
	// WatchdogLastOutcome: "refreshed", "skip", "skip:<why>",
	// "fail:transient_<status|kind>", "fail:permanent_<status|kind>".
	WatchdogLastOutcome string `json:"watchdog_last_outcome"`
	// WatchdogLastRunISO is when the last pass ran (RFC 3339 UTC).
	WatchdogLastRunISO string `json:"watchdog_last_run_iso"`

	// OutcomeCode is the pass's exit code (0 refreshed, 1 nothing to do,
	// 2 transient, 3 permanent).
	OutcomeCode int `json:"watchdog_last_outcome_code"`
	// Reason is one token-free line saying why.
	Reason string `json:"reason,omitempty"`
	// Credential sums up the credential: "ok", "refresh_due", "refreshing_failed"
	// (transient trouble), "dead" (permanent failure; needs a new login),
	// "absent", "not_refreshable", "unreadable".
	Credential string `json:"credential"`
	AuthMode   string `json:"auth_mode,omitempty"`
	AccountID  string `json:"account_id,omitempty"`
	PlanType   string `json:"plan_type,omitempty"`
	// AccessTokenExpiresAt is the access token's exp ("" unknown).
	AccessTokenExpiresAt string `json:"access_token_expires_at"`
	// NextCheckAt is when the watchdog will look again ("" for a single pass).
	NextCheckAt string `json:"next_check_at"`
	// ConsecutiveFailures counts failed passes since the last good one.
	ConsecutiveFailures int    `json:"consecutive_failures"`
	LastErrorClass      string `json:"last_error_class"` // "", "transient", "permanent"
	LastErrorKind       string `json:"last_error_kind,omitempty"`
	LastErrorCode       string `json:"last_error_code,omitempty"`
	LastHTTPStatus      int    `json:"last_http_status"`
	RetryAfterSeconds   int64  `json:"retry_after_seconds,omitempty"`
	// LastSuccessISO is when this watchdog last refreshed the credential.
	LastSuccessISO string `json:"last_success_iso,omitempty"`
	// RefreshOwner: this process may refresh (CODEX_AUTH_REFRESH_OWNER).
	RefreshOwner bool `json:"refresh_owner"`
	// PID of the watchdog that wrote the file; WatchdogLoop is true when it
	// runs as a loop (the launcher or `refresh`), false for `refresh --once`.
	PID          int    `json:"pid"`
	WatchdogLoop bool   `json:"watchdog_loop"`
	Store        string `json:"store"`
	// UnknownKeys are auth.json keys carried verbatim (names only).
	UnknownKeys []string `json:"unknown_keys,omitempty"`
}

// WriteStatus writes the status file (Home.WriteJSON). A missing CODEX_HOME
// returns an error for which errors.Is(err, os.ErrNotExist) holds (the temp
// file cannot be created): callers treat it as a clean skip.
func WriteStatus(h Home, s Status) error {
	return h.WriteJSON(StatusFileName, s)
}

// WriteJSON writes v, indented, to the status file name in CODEX_HOME:
// atomically (temp file, rename), 0600, owned like auth.json (advisoryOwner;
// not being allowed to give it away, when not root, leaves it ours). It
// does not fsync: a status file is advisory and rewritten often, so after a
// crash a reader sees the old file or the new one (rename is atomic), at
// worst an empty one, which it reports as an error; auth.json, which must
// never be lost, keeps every fsync. A flush here would put a disk round trip
// before the child's start and after its exit.
func (h Home) WriteJSON(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	d, err := h.Open()
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer d.Close()
	return d.WriteFile(name, tempPrefix, append(data, '\n'), 0o600, h.advisoryOwner(d), false)
}

// ReadStatus reads the status file: a regular file in CODEX_HOME of at most
// maxStatusSize bytes (else an error naming what it is).
func ReadStatus(h Home) (Status, error) {
	var s Status
	if err := h.ReadJSON(StatusFileName, &s); err != nil {
		return Status{}, fmt.Errorf("reading the status file: %w", err)
	}
	return s, nil
}

// ReadJSON reads the file name in CODEX_HOME (a status file: at most
// maxStatusSize bytes, a regular file) into v.
func (h Home) ReadJSON(name string, v any) error {
	data, err := h.ReadFile(name, maxStatusSize)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
