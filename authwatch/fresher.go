package authwatch

// Evidence names CompareFreshness reports in its by result.
const (
	ByLastRefresh  = "last_refresh"
	ByAccessExpiry = "access token expiry"
)

// CompareFreshness tells which of two credentials is the fresher one, so
// that every "may this credential replace that one" decision (the refresh
// commit, boot seeding, the fleet store, the platform source) ranks them the
// same way. cmp > 0 when a is fresher, < 0 when b is, 0 when the files give
// no evidence either way; by names the evidence used (ByLastRefresh,
// ByAccessExpiry), "" when cmp is 0.
//
// last_refresh comes first because the CLI itself writes it at every
// refresh, so it orders generations of one login directly. The access
// token's expiry is the fallback for files that lack it (older CLIs, hand
// written files) or where it does not tell the two apart: a later refresh
// mints a token that expires later. A side without a readable value gives no
// evidence, and neither do equal values.
//
// What "no evidence" means is each caller's policy: keep what is there,
// assume the other may be newer, or let another rule decide.
func CompareFreshness(a, b *AuthFile) (cmp int, by string) {
	la, oka := a.LastRefresh()
	lb, okb := b.LastRefresh()
	if oka && okb {
		if c := la.Compare(lb); c != 0 {
			return c, ByLastRefresh
		}
	}
	ea, oka := a.AccessExpiry()
	eb, okb := b.AccessExpiry()
	if oka && okb {
		if c := ea.Compare(eb); c != 0 {
			return c, ByAccessExpiry
		}
	}
	return 0, ""
}
