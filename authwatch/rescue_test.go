package authwatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// failingStore is the file store whose commits of a refresh's answer fail
// while fails > 0, as a full disk or an immutable auth.json would make them.
type failingStore struct {
	inner Store
	mu    sync.Mutex
	fails int
}

func (s *failingStore) Load(ctx context.Context) (*AuthFile, error) { return s.inner.Load(ctx) }

func (s *failingStore) Update(ctx context.Context, fn func(ctx context.Context, cur *AuthFile) (*AuthFile, error)) error {
	cur, err := s.inner.Load(ctx)
	if err != nil {
		return err
	}
	next, err := fn(ctx, cur)
	if err != nil || next == nil {
		return err
	}
	s.mu.Lock()
	failing := s.fails > 0
	s.fails--
	s.mu.Unlock()
	if failing {
		return &UnwrittenError{Cred: next, Cause: errors.New("renaming the temporary file over auth.json: operation not permitted")}
	}
	return s.inner.Update(ctx, func(context.Context, *AuthFile) (*AuthFile, error) { return next, nil })
}

// TestLoopKeepsAnUnwrittenAnswer: the loop's commit fails three times after
// a successful POST. The answer is kept in memory and written by a later
// pass, with backoff; the spent refresh token is never sent again, and the
// status says "refreshed, not yet written" meanwhile.
func TestLoopKeepsAnUnwrittenAnswer(t *testing.T) {
	c0 := newCred(0, loopStart.Add(time.Hour))
	var fs *failingStore
	r := newLoopRig(t, c0.file(loopStart.Add(-20*time.Hour)), c0.Refresh, true, func(c *Config) {
		fs = &failingStore{inner: &FileStore{Home: c.Home}, fails: 3}
		c.Store = fs
	})
	var sawUnwritten bool
	r.clock.onSleep = func(time.Time) {
		if st, err := ReadStatus(r.home); err == nil && st.Credential == "unwritten" && st.OutcomeCode == int(OutcomeTransient) {
			sawUnwritten = true
		}
	}
	r.run(2*time.Hour, func(time.Time) bool {
		f, _, err := r.home.Read()
		return err == nil && f.Tokens().RefreshToken == r.m.issued.Refresh
	})
	if n := r.m.postCount(); n != 1 {
		t.Fatalf("%d POSTs, want 1: the spent refresh token was sent again", n)
	}
	f, _, err := r.home.Read()
	if err != nil || f.Tokens().RefreshToken != r.m.issued.Refresh {
		t.Fatalf("auth.json does not hold the answer: %v", err)
	}
	if !sawUnwritten {
		t.Fatal("the status never said unwritten")
	}
	if st, _ := ReadStatus(r.home); st.Credential != "ok" || st.OutcomeCode != int(OutcomeRefreshed) {
		t.Fatalf("final status %+v", st)
	}
}
