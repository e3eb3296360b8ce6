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

// Rule is what one edge case of MayReplace decides.
type Rule uint8

const (
	// RuleCompare: this edge does not decide; the next one (in the end
	// freshness) does.
	RuleCompare Rule = iota
	// RuleKeep: the current credential stays.
	RuleKeep
	// RuleReplace: the candidate replaces it.
	RuleReplace
	// RuleSameRefreshToken (Tie only): replace when both hold the same
	// refresh token, keep when they differ. A different refresh token may
	// be a newer, unspent one; the same one is the one ours was made from.
	RuleSameRefreshToken
)

// ReplacePolicy is one caller's answers to the edge cases of "may this
// credential replace that one". MayReplace looks at the edges in the order
// of the fields; the first that is not RuleCompare decides. After them,
// freshness (CompareFreshness) decides: a fresher candidate replaces, a
// staler one does not, and Tie says what no evidence means. An account that
// one side does not name never tells two logins apart: freshness decides.
type ReplacePolicy struct {
	// UnusableCandidate: the candidate cannot be refreshed (Refreshable).
	UnusableCandidate Rule
	// NoCurrent: there is no current credential (RuleCompare: replace).
	NoCurrent Rule
	// UnusableCurrent: the current credential cannot be refreshed.
	UnusableCurrent Rule
	// SameTokens: both hold the same tokens.
	SameTokens Rule
	// OtherAccount: both name an account, and not the same one.
	OtherAccount Rule
	// Tie: freshness gives no evidence either way.
	Tie Rule
}

// The callers' policies, each in one place.
var (
	// ReplaceOnCommit: may the credential a refresh started from replace
	// the auth.json found at its commit (an old CLI or a hand edit may have
	// rewritten it)? Only when that file is not newer: a different refresh
	// token without evidence may be newer, and is kept. Accounts do not
	// matter: the file is the user's choice either way.
	ReplaceOnCommit = ReplacePolicy{NoCurrent: RuleKeep, Tie: RuleSameRefreshToken}
	// ReplaceOnRescue: may a rescued answer replace auth.json? As a commit,
	// and only for the same login: a missing file is a logout and another
	// account a new login, neither undone.
	ReplaceOnRescue = ReplacePolicy{NoCurrent: RuleKeep, OtherAccount: RuleKeep, Tie: RuleSameRefreshToken}
	// ReplaceOnSeed: may a credential given at boot replace auth.json? A
	// static copy replaces an empty or unusable file and another account
	// (the operator's choice), never a file that may have been rotated:
	// without evidence the file stays.
	ReplaceOnSeed = ReplacePolicy{NoCurrent: RuleReplace, UnusableCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleReplace, Tie: RuleKeep}
	// ReplaceOnPublish: may a launcher's local credential replace the
	// shared one? Only a usable, strictly fresher copy of the same login
	// (the CLI refreshed it); without evidence the shared one wins.
	ReplaceOnPublish = ReplacePolicy{UnusableCandidate: RuleKeep, NoCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleKeep, Tie: RuleKeep}
	// ReplaceOnPublishRejected: ReplaceOnPublish when the shared credential
	// was rejected for good: another login, or the same one not staler,
	// replaces it (an operator's new login; a spent older copy does not).
	ReplaceOnPublishRejected = ReplacePolicy{UnusableCandidate: RuleKeep, NoCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleReplace, Tie: RuleReplace}
	// ReplaceOnFollow: may the shared credential (the fleet's store, the
	// platform's copy) replace a launcher's local one? Yes, unless the local
	// one is the same tokens or a usable, strictly fresher copy of the same
	// login. It is the complement of ReplaceOnPublish, so a local
	// credential is either published or replaced, never left apart.
	ReplaceOnFollow = ReplacePolicy{NoCurrent: RuleReplace, UnusableCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleReplace, Tie: RuleReplace}
)

// ReplaceReason names the edge that decided a ReplaceVerdict.
type ReplaceReason string

const (
	ReasonNoCandidate       ReplaceReason = "no candidate credential"
	ReasonUnusableCandidate ReplaceReason = "the candidate cannot be refreshed"
	ReasonNoCurrent         ReplaceReason = "no current credential"
	ReasonUnusableCurrent   ReplaceReason = "the current credential cannot be refreshed"
	ReasonSameTokens        ReplaceReason = "the same tokens"
	ReasonOtherAccount      ReplaceReason = "another account"
	ReasonFresher           ReplaceReason = "the candidate is fresher"
	ReasonStaler            ReplaceReason = "the current credential is fresher"
	ReasonNoEvidence        ReplaceReason = "no evidence which is fresher"
)

// ReplaceVerdict is MayReplace's answer: whether to replace, the edge that
// decided, and for ReasonFresher and ReasonStaler the evidence
// (CompareFreshness's by).
type ReplaceVerdict struct {
	Replace bool
	Reason  ReplaceReason
	By      string
}

// MayReplace is the one "may candidate replace current" relation; p is the
// caller's policy. A nil candidate never replaces; a nil current is
// NoCurrent.
func MayReplace(candidate, current *AuthFile, p ReplacePolicy) ReplaceVerdict {
	if candidate == nil {
		return ReplaceVerdict{Reason: ReasonNoCandidate}
	}
	edges := []struct {
		applies bool
		rule    Rule
		reason  ReplaceReason
	}{
		{!refreshable(candidate), p.UnusableCandidate, ReasonUnusableCandidate},
		{current == nil, p.NoCurrent, ReasonNoCurrent},
		{current != nil && !refreshable(current), p.UnusableCurrent, ReasonUnusableCurrent},
		{current != nil && candidate.Tokens() == current.Tokens(), p.SameTokens, ReasonSameTokens},
		{current != nil && otherAccount(candidate, current), p.OtherAccount, ReasonOtherAccount},
	}
	for _, e := range edges {
		if e.applies && e.rule != RuleCompare {
			return ReplaceVerdict{Replace: e.rule == RuleReplace, Reason: e.reason}
		}
	}
	if current == nil {
		return ReplaceVerdict{Replace: true, Reason: ReasonNoCurrent}
	}
	switch cmp, by := CompareFreshness(candidate, current); {
	case cmp > 0:
		return ReplaceVerdict{Replace: true, Reason: ReasonFresher, By: by}
	case cmp < 0:
		return ReplaceVerdict{Reason: ReasonStaler, By: by}
	}
	sameRT := candidate.Tokens().RefreshToken == current.Tokens().RefreshToken
	return ReplaceVerdict{Replace: p.Tie == RuleReplace || p.Tie == RuleSameRefreshToken && sameRT, Reason: ReasonNoEvidence}
}

func refreshable(f *AuthFile) bool {
	ok, _ := f.Refreshable()
	return ok
}

func otherAccount(a, b *AuthFile) bool {
	x, y := a.AccountID(), b.AccountID()
	return x != "" && y != "" && x != y
}
