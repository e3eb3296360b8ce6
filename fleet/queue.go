package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/molecule-ai/codex-launch/authwatch"
)

// request is one Update waiting for the follower.
//
// Through a pooler a request that finds another launcher's refresh under
// way (pgstore.ErrLockBusy) is parked instead of holding a server session
// on the row lock: it stays in the queue and runs again as soon as the
// follower sees a generation newer than afterGen (the refresh it waited for,
// which its fn will then find fresh), or at retryAt (a pause from
// parkPauseMin doubling to parkPauseMax, with jitter: the refresher may have
// failed and released the lock), until deadline (LockTimeout after it was
// first parked).
type request struct {
	ctx  context.Context
	fn   func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error)
	done chan error

	parked   bool
	afterGen int64
	retryAt  time.Time
	deadline time.Time
	pause    time.Duration
}

// The pauses are long beside a refresh (one POST), because the follower's
// own polls bring the new generation: shorter ones cost every waiter of a
// wave transactions the pool has no room for (measured in docs/fleet.md).
const (
	parkPauseMin = 500 * time.Millisecond
	parkPauseMax = 5 * time.Second
)

// takeRequest removes and returns the first request that may run now: not
// parked, parked and due, overtaken by a newer generation, or withdrawn by
// its caller (it then ends at once). With none, it returns when the
// earliest parked one falls due (zero: nothing is parked). f.mu is held.
func (f *Fleet) takeRequest(now time.Time) (*request, time.Time) {
	var wake time.Time
	for i, r := range f.queue {
		if !r.parked || f.state.Generation > r.afterGen || r.ctx.Err() != nil || !now.Before(r.retryAt) {
			f.queue = append(f.queue[:i:i], f.queue[i+1:]...)
			return r, time.Time{}
		}
		if wake.IsZero() || r.retryAt.Before(wake) {
			wake = r.retryAt
		}
	}
	return nil, wake
}

// park puts r back first in the queue after it found the lock busy; false
// when its deadline has passed, and r is to be answered with the lock
// failure instead.
func (f *Fleet) park(r *request, now time.Time) bool {
	if !r.parked {
		r.parked, r.deadline, r.pause = true, now.Add(f.cfg.LockTimeout), parkPauseMin
	} else {
		r.pause = min(2*r.pause, parkPauseMax)
	}
	if !now.Before(r.deadline) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r.afterGen, r.retryAt = f.state.Generation, now.Add(jitter(r.pause))
	f.queue = append([]*request{r}, f.queue...)
	return true
}

// withdraw removes r from the queue; false when the follower took it already.
func (f *Fleet) withdraw(r *request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, q := range f.queue {
		if q == r {
			f.queue = append(f.queue[:i:i], f.queue[i+1:]...)
			return true
		}
	}
	return false
}

// failQueue answers every queued request with err.
func (f *Fleet) failQueue(err error) {
	f.mu.Lock()
	q := f.queue
	f.queue = nil
	f.mu.Unlock()
	for _, r := range q {
		r.done <- err
	}
}

// result is r's answer once the follower has stopped.
func (f *Fleet) result(r *request) error {
	select {
	case err := <-r.done:
		return err
	default:
		return fmt.Errorf("%w: follower stopped", ErrStoreUnavailable)
	}
}
