package authwatch

// MayReplace is the one "may this credential replace that one" relation;
// p is the caller's policy. A nil candidate never replaces.
func MayReplace(candidate, current *AuthFile, p ReplacePolicy) ReplaceVerdict {
	if candidate == nil {
		return ReplaceVerdict{Reason: ReasonNoCandidate}
	}
	has := current != nil
	for _, e := range []struct {
		applies bool
		rule    Rule
		reason  ReplaceReason
	}{
		{!refreshable(candidate), p.UnusableCandidate, ReasonUnusableCandidate},
		{!has, p.NoCurrent, ReasonNoCurrent},
		{has && !refreshable(current), p.UnusableCurrent, ReasonUnusableCurrent},
		{has && candidate.Tokens() == current.Tokens(), p.SameTokens, ReasonSameTokens},
		{has && otherAccount(candidate, current), p.OtherAccount, ReasonOtherAccount},
	} {
		if e.applies && e.rule != RuleCompare {
			return ReplaceVerdict{Replace: e.rule == RuleReplace, Reason: e.reason}
		}
	}
	if !has {
		return ReplaceVerdict{Replace: true, Reason: ReasonNoCurrent}
	}
	switch cmp, by := compareFreshness(candidate, current); {
	case cmp > 0:
		return ReplaceVerdict{Replace: true, Reason: ReasonFresher, By: by}
	case cmp < 0:
		return ReplaceVerdict{Reason: ReasonStaler, By: by}
	}
	sameRT := candidate.Tokens().RefreshToken == current.Tokens().RefreshToken
	return ReplaceVerdict{Replace: p.Tie == RuleReplace || p.Tie == RuleSameRefreshToken && sameRT, Reason: ReasonNoEvidence}
}

// ReplacePolicy is one caller's answer to each edge case, looked at in the
// order of the fields; the first that is not RuleCompare decides. Then
// freshness does: a fresher candidate replaces, a staler one does not, and
// Tie is what no evidence means. An account that one side does not name
// tells no two logins apart: freshness decides.
type ReplacePolicy struct {
	UnusableCandidate Rule // the candidate cannot be refreshed
	NoCurrent         Rule // there is no current credential (RuleCompare: replace)
	UnusableCurrent   Rule // the current one cannot be refreshed
	SameTokens        Rule // both hold the same tokens
	OtherAccount      Rule // both name an account, not the same one
	Tie               Rule // freshness gives no evidence either way
}

// Rule is what one edge case decides.
type Rule uint8

const (
	RuleCompare Rule = iota // the edge does not decide; the next one does
	RuleKeep                // the current credential stays
	RuleReplace             // the candidate replaces it
	// RuleSameRefreshToken (Tie only) replaces when both hold the same
	// refresh token (the one ours was made from), and keeps a different
	// one, which may be newer and unspent.
	RuleSameRefreshToken
)

// The callers' policies.
var (
	// ReplaceOnCommit: the credential a refresh started from may replace
	// the auth.json found at its commit (rewritten by an old CLI or by
	// hand) unless that file may be newer. The account is the user's choice.
	ReplaceOnCommit = ReplacePolicy{NoCurrent: RuleKeep, Tie: RuleSameRefreshToken}
	// ReplaceOnRescue: a rescued answer, as a commit, and only over the
	// same login: a missing file is a logout, another account a new login.
	ReplaceOnRescue = ReplacePolicy{NoCurrent: RuleKeep, OtherAccount: RuleKeep, Tie: RuleSameRefreshToken}
	// ReplaceOnSeed: a static copy given at boot replaces no file, an
	// unusable one and another account (the operator's choice), never one
	// that may have been rotated.
	ReplaceOnSeed = ReplacePolicy{NoCurrent: RuleReplace, UnusableCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleReplace, Tie: RuleKeep}
	// ReplaceOnPublish: a launcher's local credential replaces the shared
	// one when it is usable and strictly fresher (the CLI refreshed it).
	ReplaceOnPublish = ReplacePolicy{UnusableCandidate: RuleKeep, NoCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleKeep, Tie: RuleKeep}
	// ReplaceOnPublishRejected: ReplaceOnPublish over a shared credential
	// rejected for good: another login, or the same one not staler, may
	// replace it; a spent older copy may not.
	ReplaceOnPublishRejected = ReplacePolicy{UnusableCandidate: RuleKeep, NoCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleReplace, Tie: RuleReplace}
	// ReplaceOnFollow: the shared credential (the fleet's, the platform's)
	// replaces a launcher's local one unless ReplaceOnPublish would publish
	// that one: a local credential is published or replaced, never left apart.
	ReplaceOnFollow = ReplacePolicy{NoCurrent: RuleReplace, UnusableCurrent: RuleReplace, SameTokens: RuleKeep,
		OtherAccount: RuleReplace, Tie: RuleReplace}
)

// ReplaceVerdict is MayReplace's answer and the edge that decided; By is
// the evidence of ReasonFresher and ReasonStaler.
type ReplaceVerdict struct {
	Replace bool
	Reason  ReplaceReason
	By      string
}

// ReplaceReason names the edge that decided.
type ReplaceReason string

const (
	ReasonNoCandidate, ReasonUnusableCandidate ReplaceReason = "no candidate credential", "the candidate cannot be refreshed"
	ReasonNoCurrent, ReasonUnusableCurrent     ReplaceReason = "no current credential", "the current credential cannot be refreshed"
	ReasonSameTokens, ReasonOtherAccount       ReplaceReason = "the same tokens", "another account"
	ReasonFresher, ReasonStaler                ReplaceReason = "the candidate is fresher", "the current credential is fresher"
	ReasonNoEvidence                           ReplaceReason = "neither last_refresh nor the access token's expiry tells which is fresher"
)

// The evidence compareFreshness names.
const (
	ByLastRefresh  = "last_refresh"
	ByAccessExpiry = "access token expiry"
)

// compareFreshness is > 0 when a is fresher than b, < 0 when b is, 0 without
// evidence; by names the evidence. last_refresh comes first: the CLI writes
// it at every refresh. The access token's expiry is the fallback (a later
// refresh mints a later expiry). A side without a readable value, or equal
// values, give no evidence.
func compareFreshness(a, b *AuthFile) (cmp int, by string) {
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

func refreshable(f *AuthFile) bool {
	ok, _ := f.Refreshable()
	return ok
}

func otherAccount(a, b *AuthFile) bool {
	x, y := a.AccountID(), b.AccountID()
	return x != "" && y != "" && x != y
}
