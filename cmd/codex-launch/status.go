package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/boot"
	"github.com/molecule-ai/codex-launch/fleet"
	"github.com/molecule-ai/codex-launch/internal/human"
)

// snapshot is what status and health read: auth.json's metadata, the status
// file and the health verdict. It never holds a token.
type snapshot struct {
	CodexHome string            `json:"codex_home"`
	Auth      *authSummary      `json:"auth"`
	AuthError string            `json:"auth_error,omitempty"`
	Status    *authwatch.Status `json:"status"`
	StatusErr string            `json:"status_error,omitempty"`
	Health    healthSummary     `json:"health"`
	// Store is the shared credential store's state; nil for the file store.
	Store *fleet.Summary `json:"store,omitempty"`
}

type authSummary struct {
	Mode                 string   `json:"auth_mode"`
	AccountID            string   `json:"account_id,omitempty"`
	Refreshable          bool     `json:"refreshable"`
	NotRefreshableReason string   `json:"not_refreshable_reason,omitempty"`
	LastRefresh          string   `json:"last_refresh,omitempty"`
	AccessTokenExpiresAt string   `json:"access_token_expires_at,omitempty"`
	UnknownKeys          []string `json:"unknown_keys,omitempty"`
}

type healthSummary struct {
	OK     bool   `json:"ok"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// readSnapshot reads CODEX_HOME without locks (every writer renames, so a
// reader never sees a torn file) and judges health.
func readSnapshot(cfg *Config, dir string, now time.Time) snapshot {
	home := authwatch.Home{Dir: dir}
	snap := snapshot{CodexHome: dir}
	in := authwatch.HealthInput{Now: now, Interval: cfg.Interval}

	f, _, err := home.Read()
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		in.AuthErr = err
		snap.AuthError = err.Error()
	default:
		in.Auth = f
		snap.Auth = summarize(f)
	}
	st, err := authwatch.ReadStatus(home)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		in.StatusErr = err
		snap.StatusErr = err.Error()
	default:
		in.Status = &st
		snap.Status = &st
	}
	if _, err := home.Lstat(authwatch.RescueFileName); err == nil {
		in.Rescued = true
	}
	h := authwatch.JudgeHealth(in)
	snap.Health = healthSummary{OK: h.OK, State: string(h.State), Reason: h.Reason}
	// A shared store that is away does not change the verdict (the child
	// runs on the local credential; a restart would not bring the database
	// back), but the line says so.
	snap.Store = fleet.ReadSummary(cfg.Fleet, dir)
	if note := snap.Store.HealthNote(); note != "" {
		snap.Health.Reason += "; " + note
	}
	return snap
}

func summarize(f *authwatch.AuthFile) *authSummary {
	s := &authSummary{Mode: string(f.Mode()), AccountID: f.AccountID(), UnknownKeys: f.UnknownKeys()}
	s.Refreshable, s.NotRefreshableReason = f.Refreshable()
	if t, ok := f.LastRefresh(); ok {
		s.LastRefresh = t.UTC().Format(time.RFC3339)
	}
	if t, ok := f.AccessExpiry(); ok {
		s.AccessTokenExpiresAt = t.UTC().Format(time.RFC3339)
	}
	return s
}

// status prints what the watchdog knows, for a person or (--json) a program.
func (p *program) status(cfg *Config, env []string, asJSON bool) int {
	now := time.Now()
	snap := readSnapshot(cfg, cfg.ResolvedCodexHome(boot.CurrentHome(env)), now)
	if asJSON {
		enc := json.NewEncoder(p.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(snap); err != nil {
			fmt.Fprintf(p.stderr, "codex-launch: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	writeStatus(p.stdout, snap, now)
	return exitOK
}

func writeStatus(w io.Writer, s snapshot, now time.Time) {
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%-16s %s\n", k, fmt.Sprintf(format, args...)) }
	row("CODEX_HOME", "%s", s.CodexHome)
	switch {
	case s.AuthError != "":
		row("credential", "unreadable: %s", s.AuthError)
	case s.Auth == nil:
		row("credential", "none (no auth.json)")
	default:
		a := s.Auth
		kind := a.Mode + " login"
		if a.AccountID != "" {
			kind += ", account " + a.AccountID
		}
		switch {
		case s.Health.State == string(authwatch.HealthDead):
			kind += ", dead: a new login is needed"
		case a.Refreshable:
			kind += ", refreshable"
		default:
			kind += ", not refreshed: " + a.NotRefreshableReason
		}
		row("credential", "%s", kind)
		row("access token", "%s", when(a.AccessTokenExpiresAt, now, "expires"))
		row("last refresh", "%s", when(a.LastRefresh, now, ""))
		if len(a.UnknownKeys) > 0 {
			row("kept keys", "%v (unknown to codex-launch, carried verbatim)", a.UnknownKeys)
		}
	}
	switch st := s.Status; {
	case s.StatusErr != "":
		row("watchdog", "status file unreadable: %s", s.StatusErr)
	case st == nil:
		row("watchdog", "no status file: the watchdog has not run here")
	default:
		row("watchdog", "last ran %s: %s", when(st.WatchdogLastRunISO, now, ""), st.WatchdogLastOutcome)
		if st.Reason != "" {
			row("", "%s", st.Reason)
		}
		if st.NextCheckAt != "" {
			row("next check", "%s", when(st.NextCheckAt, now, ""))
		}
		if st.ConsecutiveFailures > 0 || st.LastErrorClass != "" {
			row("failures", "%d in a row; last: %s", st.ConsecutiveFailures, lastError(st))
		}
		owner := "yes"
		if !st.RefreshOwner {
			owner = "no (watch and report only)"
		}
		row("refresh owner", "%s", owner)
		row("written by", "%s", writer(st))
	}
	if st := s.Store; st != nil {
		line := fmt.Sprintf("%s: %s", st.Store, st.State)
		if st.Since != "" {
			line += " since " + st.Since
		}
		if st.Generation != 0 {
			line += fmt.Sprintf(", generation %d", st.Generation)
		}
		if st.Error != "" {
			line += " (" + st.Error + ")"
		}
		row("store", "%s", line)
	}
	row("health", "%s", healthLine(s))
}

// lastError describes the last failure: its class, then what failed.
func lastError(st *authwatch.Status) string {
	var what []string
	if st.LastErrorKind != "" && !(st.LastErrorKind == authwatch.KindHTTP && st.LastHTTPStatus != 0) {
		what = append(what, st.LastErrorKind)
	}
	if st.LastHTTPStatus != 0 {
		what = append(what, fmt.Sprintf("HTTP %d", st.LastHTTPStatus))
	}
	if st.LastErrorCode != "" {
		what = append(what, st.LastErrorCode)
	}
	if len(what) == 0 {
		return st.LastErrorClass
	}
	return st.LastErrorClass + " (" + strings.Join(what, ", ") + ")"
}

// healthLine is the verdict as `health` prints it and `status` shows it.
func healthLine(s snapshot) string {
	if s.Health.OK {
		return "healthy: " + s.Health.Reason
	}
	return fmt.Sprintf("unhealthy (%s): %s", s.Health.State, s.Health.Reason)
}

// writer says who wrote the status file: a single pass, or a watchdog loop
// that is still running or has gone (a pid is shown only while it means
// something).
func writer(st *authwatch.Status) string {
	if !st.WatchdogLoop {
		return "a single pass (refresh --once)"
	}
	if err := unix.Kill(st.PID, 0); err == nil || errors.Is(err, unix.EPERM) {
		return fmt.Sprintf("the watchdog, pid %d", st.PID)
	}
	return "a watchdog that is no longer running"
}

// when shows an RFC 3339 time with its distance from now.
func when(iso string, now time.Time, verb string) string {
	if iso == "" {
		return "unknown"
	}
	t, err := time.Parse(time.RFC3339Nano, iso)
	if err != nil {
		return iso
	}
	rel := human.Relative(t, now)
	if verb != "" {
		return fmt.Sprintf("%s %s (%s)", verb, iso, rel)
	}
	return fmt.Sprintf("%s (%s)", iso, rel)
}

// health is for HEALTHCHECK: exit 0 when the credential is usable and the
// watchdog alive, 1 otherwise, with one line saying why.
func (p *program) health(cfg *Config, env []string) int {
	snap := readSnapshot(cfg, cfg.ResolvedCodexHome(boot.CurrentHome(env)), time.Now())
	fmt.Fprintln(p.stdout, healthLine(snap))
	if snap.Health.OK {
		return exitOK
	}
	return exitFailed
}
