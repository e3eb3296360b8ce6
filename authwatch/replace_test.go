package authwatch

import (
	"testing"
	"time"

	"github.com/molecule-ai/codex-launch/tokenmock"
)

// freshT0 is the fixed instant the freshness fixtures are built around.
const freshT0 = 1772366400 // 2026-03-01T12:00:00Z

// freshFile is a ChatGPT login of acct-f. A zero lr leaves last_refresh out;
// a zero exp mints an access token without an exp claim.
func freshFile(t *testing.T, refresh string, lr, exp time.Time) *AuthFile {
	t.Helper()
	return login(t, "acct-f", "rt_"+tokenmock.Sentinel+"_"+refresh, "", lr, exp)
}

func TestCompareFreshness(t *testing.T) {
	t0 := time.Unix(freshT0, 0).UTC()
	early, late := t0.Add(-time.Hour), t0
	expSoon, expLate := t0.Add(time.Hour), t0.Add(2*time.Hour)
	var none time.Time
	cases := []struct {
		name      string
		aLR, aExp time.Time
		bLR, bExp time.Time
		wantCmp   int // the sign of cmp; (b, a) must give the opposite
		wantBy    string
	}{
		{"last_refresh newer", late, expSoon, early, expLate, 1, ByLastRefresh},
		{"last_refresh older", early, expLate, late, expSoon, -1, ByLastRefresh},
		{"last_refresh equal: expiry decides", late, expLate, late, expSoon, 1, ByAccessExpiry},
		{"last_refresh equal, expiry equal", late, expLate, late, expLate, 0, ""},
		{"last_refresh equal, one without expiry", late, expLate, late, none, 0, ""},
		{"only a has last_refresh: expiry decides", late, expSoon, none, expLate, -1, ByAccessExpiry},
		{"only b has last_refresh: expiry decides", none, expLate, early, expSoon, 1, ByAccessExpiry},
		{"only one has last_refresh, one without expiry", late, expLate, none, none, 0, ""},
		{"expiry only, a later", none, expLate, none, expSoon, 1, ByAccessExpiry},
		{"expiry only, equal", none, expLate, none, expLate, 0, ""},
		{"neither has anything", none, none, none, none, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := freshFile(t, "a", c.aLR, c.aExp)
			b := freshFile(t, "b", c.bLR, c.bExp)
			cmp, by := compareFreshness(a, b)
			if cmpSign(cmp) != c.wantCmp || by != c.wantBy {
				t.Errorf("compareFreshness(a, b) = %d, %q; want sign %d, %q", cmp, by, c.wantCmp, c.wantBy)
			}
			cmp, by = compareFreshness(b, a)
			if cmpSign(cmp) != -c.wantCmp || by != c.wantBy {
				t.Errorf("compareFreshness(b, a) = %d, %q; want sign %d, %q", cmp, by, -c.wantCmp, c.wantBy)
			}
		})
	}
}

// TestcompareFreshnessUnreadableLastRefresh: a last_refresh that does not
// parse is no evidence; the expiry decides.
func TestCompareFreshnessUnreadableLastRefresh(t *testing.T) {
	t0 := time.Unix(freshT0, 0).UTC()
	a := freshFile(t, "a", t0, t0.Add(time.Hour))
	c := tokenmock.Credential{
		AccountID:    "acct-f",
		AccessToken:  tokenmock.MintJWT(tokenmock.Claims("acct-f", "f@example.com", t0.Add(2*time.Hour))),
		RefreshToken: "rt_" + tokenmock.Sentinel + "_b",
	}
	bad, err := ParseAuthFile(tokenmock.FormatAuthJSON(c, time.Time{}, tokenmock.FileOptions{
		NoLastRefresh: true,
		Extra:         []tokenmock.RawKey{{Key: "last_refresh", Value: []byte(`"yesterday"`)}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bad.LastRefresh(); ok {
		t.Fatal("fixture: last_refresh readable")
	}
	if cmp, by := compareFreshness(a, bad); cmp >= 0 || by != ByAccessExpiry {
		t.Errorf("compareFreshness = %d, %q; want < 0 by %q", cmp, by, ByAccessExpiry)
	}
}

func cmpSign(n int) int {
	switch {
	case n > 0:
		return 1
	case n < 0:
		return -1
	}
	return 0
}

// login is a ChatGPT login: account "" names none, refresh "" makes it
// unrefreshable, a zero lr leaves last_refresh out, a zero exp mints an
// access token without an exp claim, and tag sets the access token apart
// (same expiry, other token).
func login(t *testing.T, account, refresh, tag string, lr, exp time.Time) *AuthFile {
	t.Helper()
	claims := tokenmock.Claims(account, "f@example.com", exp)
	if exp.IsZero() {
		delete(claims, "exp")
	}
	if tag != "" {
		claims["jti"] = tag
	}
	c := tokenmock.Credential{
		AccountID:    account,
		IDToken:      tokenmock.MintJWT(tokenmock.Claims(account, "f@example.com", time.Unix(freshT0, 0).Add(time.Hour))),
		AccessToken:  tokenmock.MintJWT(claims),
		RefreshToken: refresh,
	}
	f, err := ParseAuthFile(tokenmock.FormatAuthJSON(c, lr, tokenmock.FileOptions{NoLastRefresh: lr.IsZero()}))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestMayReplace is every caller's policy against every edge case: the one
// place where "may this credential replace that one" is pinned.
func TestMayReplace(t *testing.T) {
	t0 := time.Unix(freshT0, 0).UTC()
	early, late := t0.Add(-time.Minute), t0
	exp, expLater := t0.Add(time.Hour), t0.Add(2*time.Hour)
	var none time.Time
	const acct, other = "acct-1", "acct-2"
	rt1, rt2 := "rt_"+tokenmock.Sentinel+"_1", "rt_"+tokenmock.Sentinel+"_2"
	current := login(t, acct, rt1, "cur", late, exp)

	policies := []struct {
		name string
		p    ReplacePolicy
	}{
		{"commit", ReplaceOnCommit},
		{"rescue", ReplaceOnRescue},
		{"seed", ReplaceOnSeed},
		{"publish", ReplaceOnPublish},
		{"publish over rejected", ReplaceOnPublishRejected},
		{"follow", ReplaceOnFollow},
	}
	type want [6]bool // in the order of policies
	cases := []struct {
		name               string
		candidate, current *AuthFile
		want               want
	}{
		{"no current", login(t, acct, rt2, "c", late, exp), nil,
			want{false, false, true, true, true, true}},
		{"no candidate", nil, current,
			want{false, false, false, false, false, false}},
		{"fresher by last_refresh", login(t, acct, rt2, "c", late.Add(time.Minute), exp), current,
			want{true, true, true, true, true, true}},
		{"staler by last_refresh", login(t, acct, rt2, "c", early, expLater), current,
			want{false, false, false, false, false, false}},
		{"fresher by expiry", login(t, acct, rt2, "c", none, expLater), login(t, acct, rt1, "cur", none, exp),
			want{true, true, true, true, true, true}},
		{"staler by expiry", login(t, acct, rt2, "c", none, exp), login(t, acct, rt1, "cur", none, expLater),
			want{false, false, false, false, false, false}},
		{"no evidence, same refresh token", login(t, acct, rt1, "c", late, exp), current,
			want{true, true, false, false, true, true}},
		{"no evidence, another refresh token", login(t, acct, rt2, "c", late, exp), current,
			want{false, false, false, false, true, true}},
		{"same tokens, fresher last_refresh", login(t, acct, rt1, "cur", late.Add(time.Minute), exp), current,
			want{true, true, false, false, false, false}},
		{"another account, fresher", login(t, other, rt2, "c", late.Add(time.Minute), exp), current,
			want{true, false, true, false, true, true}},
		{"another account, staler", login(t, other, rt2, "c", early, exp), current,
			want{false, false, true, false, true, true}},
		{"candidate names no account, fresher", login(t, "", rt2, "c", late.Add(time.Minute), exp), current,
			want{true, true, true, true, true, true}},
		{"current names no account, candidate staler", login(t, acct, rt2, "c", early, exp), login(t, "", rt1, "cur", late, exp),
			want{false, false, false, false, false, false}},
		{"neither names an account, fresher", login(t, "", rt2, "c", late.Add(time.Minute), exp), login(t, "", rt1, "cur", late, exp),
			want{true, true, true, true, true, true}},
		{"candidate cannot be refreshed, fresher", login(t, acct, "", "c", late.Add(time.Minute), exp), current,
			want{true, true, true, false, false, true}},
		{"current cannot be refreshed, fresher", login(t, acct, rt2, "c", early, exp), login(t, acct, "", "cur", late, exp),
			want{false, false, true, false, false, true}},
	}
	for _, c := range cases {
		for i, pol := range policies {
			v := MayReplace(c.candidate, c.current, pol.p)
			if v.Replace != c.want[i] {
				t.Errorf("%s, %s: MayReplace = %+v, want replace %v", c.name, pol.name, v, c.want[i])
			}
		}
	}

	// A launcher's local credential is either published or replaced by the
	// shared one, never left apart: ReplaceOnFollow is the complement of
	// ReplaceOnPublish for every usable local credential.
	var files []*AuthFile
	for _, c := range cases {
		files = append(files, c.candidate, c.current)
	}
	for _, local := range files {
		for _, stored := range files {
			if local == nil || stored == nil || !refreshable(local) || local.Tokens() == stored.Tokens() {
				continue
			}
			pub := MayReplace(local, stored, ReplaceOnPublish)
			fol := MayReplace(stored, local, ReplaceOnFollow)
			if pub.Replace == fol.Replace {
				t.Errorf("publish %+v and follow %+v agree (local %s, stored %s)", pub, fol, local.AccountID(), stored.AccountID())
			}
		}
	}
}
