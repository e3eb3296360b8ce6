package authwatch

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDeadTokenStatusAfterGoodPass: a credential the endpoint rejected comes
// back (a restored backup) after a pass that cleared the failure: the status
// says dead with a permanent error, not dead with no error at all.
func TestDeadTokenStatusAfterGoodPass(t *testing.T) {
	now := time.Now()
	w, h, m, orig := rejectedLogin(t, now)
	if out, _ := w.Pass(context.Background()); out != OutcomePermanent {
		t.Fatalf("first pass %v", out)
	}
	fresh := newCred(5, now.Add(9*24*time.Hour)).file(now)
	if err := os.WriteFile(h.AuthPath(), fresh, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := w.Pass(context.Background()); out != OutcomeNothingToDo {
		t.Fatalf("fresh login: %v %v", out, err)
	}
	if err := os.WriteFile(h.AuthPath(), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := w.Pass(context.Background())
	if out != OutcomePermanent || !isPermanent(err) || m.postCount() != 1 {
		t.Fatalf("restored dead credential: %v %v, %d posts", out, err, m.postCount())
	}
	st, err := ReadStatus(h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Credential != "dead" || st.OutcomeCode != int(OutcomePermanent) || st.LastErrorClass != "permanent" || st.ConsecutiveFailures != 1 {
		t.Fatalf("status says credential %q, code %d, last error class %q, %d failures", st.Credential, st.OutcomeCode, st.LastErrorClass, st.ConsecutiveFailures)
	}
}

// TestFindingsAgree: for every way a pass can end, the status file's outcome
// code, outcome label, credential and last error agree with each other, and
// health never calls a failing finding's credential "dead" or "unwritten"
// healthy.
func TestFindingsAgree(t *testing.T) {
	if len(findings) != int(foundDeadToken)+1 {
		t.Fatalf("findings has %d rows for %d findings", len(findings), int(foundDeadToken)+1)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	prefix := map[Outcome]string{OutcomeRefreshed: "refreshed", OutcomeNothingToDo: "skip", OutcomeTransient: "fail:transient_", OutcomePermanent: "fail:permanent_"}
	class := map[Outcome]string{OutcomeTransient: "transient", OutcomePermanent: "permanent"}
	for f := range finding(len(findings)) {
		row := findings[f]
		w, err := New(Config{Home: Home{Dir: t.TempDir()}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		w.loop = true
		e := ending{found: f, why: "why", next: now.Add(time.Hour)}
		switch row.outcome {
		case OutcomeTransient:
			e.err = &RefreshError{Class: ClassTransient, Kind: KindNetwork}
		case OutcomePermanent:
			e.err = &RefreshError{Class: ClassPermanent, Kind: KindHTTP, Status: 401}
		}
		st := Status{LastRefreshAgeSeconds: -1}
		r := w.conclude(&st, now, e)
		failed := row.outcome == OutcomeTransient || row.outcome == OutcomePermanent
		switch {
		case r.outcome != row.outcome || st.OutcomeCode != int(row.outcome):
			t.Errorf("finding %d: outcome %v, status code %d, table %v", f, r.outcome, st.OutcomeCode, row.outcome)
		case !strings.HasPrefix(st.WatchdogLastOutcome, prefix[row.outcome]):
			t.Errorf("finding %d: outcome %v says %q", f, row.outcome, st.WatchdogLastOutcome)
		case st.LastErrorClass != class[row.outcome]:
			t.Errorf("finding %d: outcome %v with last error class %q", f, row.outcome, st.LastErrorClass)
		case failed != (r.err != nil) || failed != (st.ConsecutiveFailures == 1):
			t.Errorf("finding %d: outcome %v, error %v, %d failures", f, row.outcome, r.err, st.ConsecutiveFailures)
		case (st.Credential == "dead") != (row.outcome == OutcomePermanent):
			t.Errorf("finding %d: outcome %v with credential %q", f, row.outcome, st.Credential)
		case !failed && (st.Credential == "unwritten" || st.Credential == "refreshing_failed" || st.Credential == "unreadable" && f != foundMalformed):
			t.Errorf("finding %d: outcome %v with credential %q", f, row.outcome, st.Credential)
		case st.Credential == "" || st.NextCheckAt == "":
			t.Errorf("finding %d: status %+v", f, st)
		}
		if st.Credential == "dead" || st.Credential == "unwritten" {
			auth := newCred(0, now.Add(time.Hour)).file(now.Add(-time.Hour))
			a, err := ParseAuthFile(auth)
			if err != nil {
				t.Fatal(err)
			}
			st.LastRefresh = a.lastRefreshText()
			if h := JudgeHealth(HealthInput{Auth: a, Status: &st, Now: now, Interval: time.Hour}); h.OK {
				t.Errorf("finding %d: credential %q judged healthy: %s", f, st.Credential, h.Reason)
			}
		}
	}
}
