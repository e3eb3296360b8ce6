package integration

// The seed's eight tests, as counterparts run against `codex-launch refresh
// --once`, and a differential run of the same fixtures through the seed
// script and through codex-launch: same exit codes and the same resulting
// credential wherever the seed is not defective. Where they differ on purpose
// the case names the reason (docs/refresh.md lists them).

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// result is what a run did to the credential.
type result int

const (
	unchanged result = iota // auth.json byte-identical (or still absent)
	refreshed               // auth.json holds the mock's newest generation
	// refreshedOther: auth.json rewritten with something that is not the
	// mock's newest generation (the seed adopting a response it should
	// have refused).
	refreshedOther
)

type parityCase struct {
	name  string
	setup func(h *home)
	ours  int
	seed  int
	// ourResult/seedResult: what each must leave in auth.json.
	ourResult, seedResult result
	// differs says why the seed's answer is not ours (a seed defect or a
	// rule of the issue the seed does not follow); empty when they agree.
	differs string
}

func parityCases() []parityCase {
	script := func(a tokenmock.Answer) func(h *home) {
		return func(h *home) { h.expired("acct-1"); h.Srv.Script(a) }
	}
	return []parityCase{
		// The counterparts of the seed's own eight tests...
		{name: "absent auth.json", setup: func(h *home) {},
			ours: exitNothing, seed: exitNothing},
		{name: "api-key mode", setup: func(h *home) {
			h.write(tokenmock.FormatAuthJSON(tokenmock.Credential{}, time.Now(), tokenmock.FileOptions{Mode: "apikey", APIKey: "sk-test", NoTokens: true, NoLastRefresh: true}))
		}, ours: exitNothing, seed: exitNothing},
		{name: "fresh token", setup: func(h *home) { h.fresh("acct-1") },
			ours: exitNothing, seed: exitNothing},
		{name: "expiring access token", setup: func(h *home) {
			c := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(5*time.Minute)) // inside the 600 s margin
			h.write(h.Srv.AuthJSON(c, time.Now().Add(-time.Hour)))
		}, ours: exitRefreshed, seed: exitRefreshed, ourResult: refreshed, seedResult: refreshed},
		{name: "stale last_refresh", setup: func(h *home) {
			c := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(10*time.Hour))
			h.write(h.Srv.AuthJSON(c, time.Now().Add(-8*24*time.Hour)))
		}, ours: exitRefreshed, seed: exitRefreshed, ourResult: refreshed, seedResult: refreshed},
		{name: "401 is permanent", setup: script(tokenmock.Error(401, "refresh_token_expired")),
			ours: exitPermanent, seed: exitPermanent},
		{name: "5xx is transient", setup: script(tokenmock.Error(500, "server_error")),
			ours: exitTransient, seed: exitTransient},
		{name: "absent CODEX_HOME directory", setup: func(h *home) {
			h.Env["CODEX_HOME"] = filepath.Join(h.Dir, "missing")
		}, ours: exitNothing, seed: exitNothing},

		// ...and beyond them: the same fixtures where the seed is sound...
		{name: "CODEX_HOME unset (image smoke)", setup: func(h *home) {
			h.Env["CODEX_HOME"] = unset
		}, ours: exitNothing, seed: exitNothing},
		{name: "no refresh token", setup: func(h *home) {
			c := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(-time.Minute))
			c.RefreshToken = ""
			h.write(h.Srv.AuthJSON(c, time.Now().Add(-time.Hour)))
		}, ours: exitNothing, seed: exitNothing},
		{name: "chatgptAuthTokens is the host's to refresh", setup: func(h *home) {
			c := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(-time.Minute))
			h.write(tokenmock.FormatAuthJSON(c, time.Now().Add(-time.Hour), tokenmock.FileOptions{Mode: "chatgptAuthTokens"}))
		}, ours: exitNothing, seed: exitNothing},
		{name: "refresh_token_reused", setup: func(h *home) {
			c := h.expired("acct-1")
			spend(h, c)
		}, ours: exitPermanent, seed: exitPermanent},
		{name: "429 is transient", setup: script(tokenmock.RetryAfter(1)),
			ours: exitTransient, seed: exitTransient},
		{name: "503 is transient", setup: script(tokenmock.Error(503, "unavailable")),
			ours: exitTransient, seed: exitTransient},
		{name: "200 with garbage", setup: script(tokenmock.Answer{Status: 200, Body: "<html>oops</html>"}),
			ours: exitTransient, seed: exitTransient},
		{name: "307 is not followed", setup: script(tokenmock.Answer{Redirect: true}),
			ours: exitTransient, seed: exitTransient},
		{name: "reset mid-body", setup: script(tokenmock.Answer{Reset: true}),
			ours: exitTransient, seed: exitTransient},

		// ...and where it is not.
		{name: "no auth_mode is a ChatGPT login", setup: func(h *home) {
			c := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(-time.Minute))
			h.write(tokenmock.FormatAuthJSON(c, time.Now().Add(-time.Hour), tokenmock.FileOptions{OmitMode: true}))
		}, ours: exitRefreshed, seed: exitNothing, ourResult: refreshed,
			differs: "seed defect: a file without auth_mode is skipped"},
		{name: "auth_mode is case-sensitive", setup: func(h *home) {
			c := h.Srv.IssueWithExpiry("acct-1", time.Now().Add(-time.Minute))
			h.write(tokenmock.FormatAuthJSON(c, time.Now().Add(-time.Hour), tokenmock.FileOptions{Mode: "ChatGPT"}))
		}, ours: exitNothing, seed: exitRefreshed, seedResult: refreshed,
			differs: "seed defect: auth_mode is lower-cased, so a value the CLI rejects is refreshed"},
		{name: "400 invalid_grant is permanent", setup: script(tokenmock.Error(400, "invalid_grant")),
			ours: exitPermanent, seed: exitTransient,
			differs: "seed defect: 400 invalid_grant treated as transient"},
		{name: "403 without a recognised code is transient", setup: script(tokenmock.Error(403, "forbidden")),
			ours: exitTransient, seed: exitTransient},
		{name: "200 with a non-JWT id_token", setup: script(tokenmock.Answer{Status: 200, Body: `{"id_token":"not-a-jwt","access_token":"a","refresh_token":"r"}`, Header: http.Header{"Content-Type": {"application/json"}}}),
			ours: exitTransient, seed: exitRefreshed, seedResult: refreshedOther,
			differs: "issue rule: a non-JWT id_token is rejected (the CLI rejects it); the seed writes it"},
		{name: "oversized body", setup: script(tokenmock.Oversized(2 << 20)),
			ours: exitTransient, seed: exitRefreshed, seedResult: refreshedOther,
			differs: "issue rule: responses are capped (1 MiB); the seed writes a 2 MiB id_token"},
	}
}

// spend redeems c's refresh token behind everyone's back, as another
// refresher that won the race would.
func spend(h *home, c tokenmock.Credential) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]string{"client_id": tokenmock.ClientID, "grant_type": "refresh_token", "refresh_token": c.RefreshToken})
	resp, err := http.Post(h.Srv.URL, "application/json", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("spending the token: %d", resp.StatusCode)
	}
}

// parityRun is one program started on a fresh fixture of a case.
type parityRun struct {
	tc          parityCase
	seed        bool
	srv         *tokenmock.Server
	h           *home
	before      []byte
	postsBefore int
	proc        runner
	cancel      func()
}

// start sets up tc's fixture and starts one program on it. All the cases of
// a test start at once and are checked afterwards: most time is spent
// waiting (the permanent cases watch auth.json for a few seconds), so this
// keeps the test short whatever -parallel is.
func (tc parityCase) start(t *testing.T, seed bool) *parityRun {
	t.Helper()
	srv := tokenmock.Start(tokenmock.Options{AccessTTL: time.Hour})
	t.Cleanup(srv.Close)
	h := newHome(t, srv)
	tc.setup(h)
	p := &parityRun{tc: tc, seed: seed, srv: srv, h: h, before: h.read(), postsBefore: srv.Posts()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p.cancel = cancel
	if seed {
		p.proc = startRunner(t, h.seedCmd(ctx, "--once"))
	} else {
		p.proc = startRunner(t, h.launcherCmd(ctx, "refresh", "--once"))
	}
	return p
}

// verify waits for the program and compares the outcome with the case.
func (p *parityRun) verify(t *testing.T) {
	tc, h, srv, seed := p.tc, p.h, p.srv, p.seed
	h.t = t
	r := p.proc.wait()
	p.cancel()
	wantCode, wantResult, who := tc.ours, tc.ourResult, "codex-launch"
	if seed {
		wantCode, wantResult, who = tc.seed, tc.seedResult, "seed"
	} else {
		h.noLeak("refresh --once output", []byte(r.output()))
		h.noLeakStatus()
	}
	if r.Code == 127 {
		t.Fatalf("%s exited 127 (could not run a helper): %s", who, lines(r.output()))
	}
	if r.Code != wantCode {
		t.Errorf("%s exited %d, want %d; output:\n%s", who, r.Code, wantCode, lines(r.output()))
	}
	after := h.read()
	latest, _ := srv.Latest("acct-1")
	got, parses := fileTokens(after)
	switch wantResult {
	case unchanged:
		if !bytes.Equal(p.before, after) {
			t.Errorf("%s changed auth.json; want it byte-identical", who)
		}
	case refreshed:
		if !parses || !sameTokens(got, latest) || latest.Generation < 1 {
			t.Errorf("%s: auth.json does not hold the refreshed credential", who)
		}
		if srv.Posts()-p.postsBefore != 1 {
			t.Errorf("%s made %d POSTs, want 1", who, srv.Posts()-p.postsBefore)
		}
	case refreshedOther:
		if bytes.Equal(p.before, after) || (parses && sameTokens(got, latest)) {
			t.Errorf("%s: want auth.json rewritten with the refused response", who)
		}
	}
	if !seed {
		if wantResult == unchanged && tc.ours == exitNothing && srv.Posts() != p.postsBefore {
			t.Errorf("codex-launch made %d POSTs with nothing to do", srv.Posts()-p.postsBefore)
		}
		if traceback.MatchString(r.output()) {
			t.Errorf("codex-launch printed a traceback")
		}
		if _, err := os.Stat(h.Env["CODEX_HOME"]); h.Env["CODEX_HOME"] == "" || err == nil {
			if h.status() == nil {
				t.Errorf("codex-launch wrote no status file")
			}
		}
	}
}

// TestRefreshSeedCounterparts runs the seed's eight tests (and the other
// parity fixtures) against codex-launch.
func TestRefreshSeedCounterparts(t *testing.T) {
	t.Parallel()
	var runs []*parityRun
	for _, tc := range parityCases() {
		runs = append(runs, tc.start(t, false))
	}
	for _, p := range runs {
		t.Run(p.tc.name, p.verify)
	}
}

// TestSeedDifferential runs the same fixtures through the seed: where the
// table says they agree, the seed must give codex-launch's answer; where it
// says they differ, the seed must show its own (so the difference is real and
// the counterpart above would catch a regression to it).
func TestSeedDifferential(t *testing.T) {
	t.Parallel()
	seedScript(t)
	seedPath(t)
	var runs []*parityRun
	for _, tc := range parityCases() {
		if tc.differs == "" && (tc.seed != tc.ours || tc.seedResult != tc.ourResult) {
			t.Fatalf("table: case %q says the programs agree but expects different answers", tc.name)
		}
		runs = append(runs, tc.start(t, true))
	}
	for _, p := range runs {
		t.Run(p.tc.name, p.verify)
	}
}
