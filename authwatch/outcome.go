package authwatch

import "time"

// finding is how a pass ended. Each path of a pass names its finding; the
// findings table alone turns it into the pass's Outcome and the status
// file's watchdog_last_outcome and credential, and conclude alone into the
// failure count and the last_error_* keys, so that these cannot disagree.
type finding int

const (
	foundFresh                 finding = iota // nothing due
	foundNoAuth                               // no auth.json: no ChatGPT login here
	foundNotRefreshable                       // a login with no refresh token (API key, ...)
	foundMalformed                            // auth.json does not parse: left alone
	foundNotOwner                             // due, but this process may not refresh
	foundAdopted                              // another writer refreshed meanwhile
	foundAdoptedAbsent                        // the locked re-read found auth.json gone
	foundAdoptedNotRefreshable                // ... or replaced by a login with nothing to refresh
	foundSuperseded                           // a newer credential won over ours
	foundRefreshed                            // our answer is in the store
	foundTransient                            // a failure to retry; the credential is unchanged
	foundUnreadable                           // auth.json exists but this process may not read it
	foundUnwritten                            // redeemed, the answer not in the store yet
	foundRejected                             // the endpoint refused the refresh token for good
	foundDeadToken                            // the refresh token already refused is still there
)

// findingRow is what the status file says for a finding. A failure's label
// is empty: it is "fail:<class>_<status or kind>" of the error.
type findingRow struct {
	outcome    Outcome
	label      string
	credential string
}

// Status.Credential's words; health judges by them (docs/status-file.md).
const (
	credOK             = "ok"
	credDue            = "refresh_due"
	credFailing        = "refreshing_failed" // transient trouble
	credDead           = "dead"              // only a new login helps
	credAbsent         = "absent"
	credNotRefreshable = "not_refreshable"
	credUnreadable     = "unreadable"
	credUnwritten      = "unwritten" // redeemed, the answer not in auth.json yet
)

var findings = [...]findingRow{
	foundFresh:                 {OutcomeNothingToDo, "skip", credOK},
	foundNoAuth:                {OutcomeNothingToDo, "skip:no_auth_json", credAbsent},
	foundNotRefreshable:        {OutcomeNothingToDo, "skip:not_refreshable", credNotRefreshable},
	foundMalformed:             {OutcomeNothingToDo, "skip:unreadable", credUnreadable},
	foundNotOwner:              {OutcomeNothingToDo, "skip:not_owner", credDue},
	foundAdopted:               {OutcomeNothingToDo, "skip:adopted", credOK},
	foundAdoptedAbsent:         {OutcomeNothingToDo, "skip:adopted", credAbsent},
	foundAdoptedNotRefreshable: {OutcomeNothingToDo, "skip:adopted", credNotRefreshable},
	foundSuperseded:            {OutcomeNothingToDo, "skip:superseded", credOK},
	foundRefreshed:             {OutcomeRefreshed, "refreshed", credOK},
	foundTransient:             {OutcomeTransient, "", credFailing},
	foundUnreadable:            {OutcomeTransient, "", credUnreadable},
	foundUnwritten:             {OutcomeTransient, "", credUnwritten},
	foundRejected:              {OutcomePermanent, "", credDead},
	foundDeadToken:             {OutcomePermanent, "fail:permanent_dead_token", credDead},
}

// ending is how a pass ended, for conclude.
type ending struct {
	found finding
	why   string // the status file's reason
	// err is the failure of a transient or permanent finding, and
	// must be of the finding's class; nil for any other.
	err *RefreshError
	// next is when to look again after a finding that is not a failure.
	// A permanent failure looks again after the policy's interval; a
	// transient one after the backoff, before seen's access token expires.
	next time.Time
	seen *AuthFile
}

// conclude ends a pass at now: it keeps the failure count (a failure is
// counted once, so a dead credential reported again is not a new one),
// fills st from the findings table and the failure, and returns the pass's
// result. Every path of a pass that writes a status ends here.
func (w *Watchdog) conclude(st *Status, now time.Time, e ending) passResult {
	row := findings[e.found]
	r := passResult{outcome: row.outcome, next: e.next}
	switch row.outcome {
	case OutcomeRefreshed:
		w.failures, w.lastErr, w.lastSuccess, w.hasDead = 0, nil, now, false
	case OutcomeNothingToDo:
		w.failures, w.lastErr = 0, nil
	default:
		if e.err != w.lastErr {
			w.failures++
		}
		w.lastErr, r.err = e.err, e.err
		r.next = now.Add(w.cfg.Policy.Interval)
		if row.outcome == OutcomeTransient {
			r.next = now.Add(w.backoff(now, e.seen, e.err))
		}
	}
	st.WatchdogLastOutcome, st.Credential, st.Reason = row.label, row.credential, e.why
	if row.label == "" {
		st.WatchdogLastOutcome = "fail:" + e.err.Class.String() + "_" + failTag(e.err)
	}
	st.OutcomeCode = int(r.outcome)
	if w.loop {
		st.NextCheckAt = isoTime(r.next)
	}
	st.ConsecutiveFailures = w.failures
	if re := w.lastErr; re != nil {
		st.LastErrorClass, st.LastErrorKind, st.LastErrorCode = re.Class.String(), re.Kind, re.Code
		st.LastHTTPStatus, st.RetryAfterSeconds = re.Status, int64(re.RetryAfter/time.Second)
	}
	st.LastSuccessISO = isoTime(w.lastSuccess)
	return r
}

// fillStatus copies the credential's token-free metadata into the status.
func fillStatus(st *Status, f *AuthFile, now time.Time) {
	if f == nil {
		return
	}
	st.AuthMode = string(f.Mode())
	st.LastRefresh = f.lastRefreshText()
	if lr, ok := f.LastRefresh(); ok {
		st.LastRefreshAgeSeconds = int64(now.Sub(lr) / time.Second)
	}
	if exp, ok := f.AccessExpiry(); ok {
		st.AccessTokenExpiresAt = isoTime(exp)
	}
	st.AccountID = f.AccountID()
	if f.Tokens().IDToken != "" {
		if c, err := ParseJWT(f.Tokens().IDToken); err == nil {
			st.PlanType = c.PlanType
		}
	}
	st.UnknownKeys = f.UnknownKeys()
}
