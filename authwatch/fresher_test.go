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
	claims := tokenmock.Claims("acct-f", "f@example.com", exp)
	if exp.IsZero() {
		delete(claims, "exp")
	}
	c := tokenmock.Credential{
		AccountID:    "acct-f",
		IDToken:      tokenmock.MintJWT(tokenmock.Claims("acct-f", "f@example.com", time.Unix(freshT0, 0).Add(time.Hour))),
		AccessToken:  tokenmock.MintJWT(claims),
		RefreshToken: "rt_" + tokenmock.Sentinel + "_" + refresh,
	}
	f, err := ParseAuthFile(tokenmock.FormatAuthJSON(c, lr, tokenmock.FileOptions{NoLastRefresh: lr.IsZero()}))
	if err != nil {
		t.Fatal(err)
	}
	return f
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
			cmp, by := CompareFreshness(a, b)
			if cmpSign(cmp) != c.wantCmp || by != c.wantBy {
				t.Errorf("CompareFreshness(a, b) = %d, %q; want sign %d, %q", cmp, by, c.wantCmp, c.wantBy)
			}
			cmp, by = CompareFreshness(b, a)
			if cmpSign(cmp) != -c.wantCmp || by != c.wantBy {
				t.Errorf("CompareFreshness(b, a) = %d, %q; want sign %d, %q", cmp, by, -c.wantCmp, c.wantBy)
			}
		})
	}
}

// TestCompareFreshnessUnreadableLastRefresh: a last_refresh that does not
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
	if cmp, by := CompareFreshness(a, bad); cmp >= 0 || by != ByAccessExpiry {
		t.Errorf("CompareFreshness = %d, %q; want < 0 by %q", cmp, by, ByAccessExpiry)
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
