package fleet

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/molecule-ai/codex-launch/authwatch"
)

// Follower is a credential store and the actor that keeps it in step with
// the fleet: a Fleet and its Run and Ready, or a follower-only source beside
// the local file store.
//
// Run must return once its context ends. Ready must be closed once the
// first sync has finished, well or not. Name is the store as logs and the
// status file show it, so it must carry no password or token.
type Follower struct {
	Store authwatch.Store
	Run   func(context.Context) error
	Ready <-chan struct{}
	Name  string
}

// Start runs f.Run in the background, where it stays until Close, and waits
// for f.Ready, at most wait (10 s when wait <= 0) and no longer than ctx:
// the caller's first pass, and the child after it, should start on the
// fleet's newest generation rather than on a local file one sync behind.
// Waiting in vain is not an error, since the local credential is still
// usable: the timeout is logged as a warning on log (nil: nowhere), a
// cancelled ctx silently.
//
// ctx bounds the wait only. The follower keeps ctx's values but not its
// cancellation: a stop signal ending ctx must not cut off the store under a
// watchdog that is still finishing a refresh through it. Close, after the
// last use of the store, ends the follower.
func Start(ctx context.Context, f Follower, wait time.Duration, log hclog.Logger) *Running {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Running{Store: f.Store, name: f.Name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		f.Run(rctx)
	}()
	if wait <= 0 {
		wait = 10 * time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-f.Ready:
	case <-t.C:
		log.Warn("credential store not synced within the prime timeout; starting on the local credential", "store", r.name)
	case <-ctx.Done():
	}
	return r
}

// Running is a started Follower: its users see one authwatch.Store (and an
// io.Closer), whatever kind of store it is.
type Running struct {
	authwatch.Store
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// Close stops the follower (ending its database session) and waits for Run
// to return, so nothing of it outlives the caller. It may be called more
// than once and always returns nil.
func (r *Running) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// String is the store's redacted name, the Follower's Name.
func (r *Running) String() string { return r.name }
