package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/molecule-ai/codex-launch/authwatch"
	"github.com/molecule-ai/codex-launch/fleet/pgstore"
)

// Load is authwatch.Store's: the stored generation while the store is
// reachable, else the local auth.json the child runs on.
func (f *Fleet) Load(ctx context.Context) (*authwatch.AuthFile, error) {
	f.mu.Lock()
	stored, connected := f.stored, f.connected
	f.mu.Unlock()
	local, err := authwatch.NewFileStore(f.cfg.Home).Load(ctx)
	if connected && stored != nil {
		if err == nil && authwatch.MayReplace(local, stored, authwatch.ReplaceOnPublish).Replace {
			return local, nil
		}
		return stored, nil
	}
	return local, err
}

// Update is authwatch.Store's: fn runs inside a database transaction that
// holds the credential's row lock, on the freshly re-read generation (or on
// the local credential when that is strictly newer: the CLI refreshed it and
// it was not published yet). Its result becomes the next generation and is
// written to the local auth.json. Another launcher waiting meanwhile sees
// the new generation and (deciding it fresh) makes no POST. When ctx ends
// before the follower has taken the request, it is withdrawn and Update
// returns at once; once taken, it is finished (a POST may be in flight).
func (f *Fleet) Update(ctx context.Context, fn func(ctx context.Context, cur *authwatch.AuthFile) (*authwatch.AuthFile, error)) error {
	f.mu.Lock()
	connected := f.connected
	select {
	case <-f.runDone:
		connected = false
	default:
	}
	if !connected {
		st := f.state
		f.mu.Unlock()
		if f.cfg.Fallback {
			f.log.Warn("credential store unavailable: refreshing the local credential alone (fallback enabled)", "store", f.desc)
			return authwatch.NewFileStore(f.cfg.Home).Update(ctx, fn)
		}
		if st.Error == "" {
			st.Error = st.State
		}
		return fmt.Errorf("%w: %s", ErrStoreUnavailable, st.Error)
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	f.queue = append(f.queue, r)
	if f.cancelWait != nil {
		f.cancelWait()
	}
	f.mu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-f.runDone:
		return f.result(r)
	case <-ctx.Done():
	}
	if f.withdraw(r) {
		return fmt.Errorf("credential store update withdrawn before it ran: %w", ctx.Err())
	}
	// The follower has taken the request: its POST may be in flight, and a
	// redeemed refresh token must be stored, so it is waited for. That is
	// bounded: the request's ctx is done, so only a POST already sent (its
	// own timeout) and the write (CallTimeout) remain.
	select {
	case err := <-r.done:
		return err
	case <-f.runDone:
		return f.result(r)
	}
}

// handle runs one Update on the follower's connection.
func (f *Fleet) handle(conn *pgstore.Conn, r *request) error {
	ctx := r.ctx
	if err := ctx.Err(); err != nil {
		return err
	}
	var produced *authwatch.AuthFile
	rec, err := conn.Locked(ctx, f.cfg.Name, func(ctx context.Context, cur *pgstore.Record) (*pgstore.New, error) {
		// Read under the lock: the wait for it may have been long, and the
		// CLI may have refreshed meanwhile.
		local, _, _ := f.cfg.Home.Read()
		var stored *authwatch.AuthFile
		if cur != nil {
			var err error
			if stored, err = authwatch.ParseAuthFile(cur.Data); err != nil {
				return nil, fmt.Errorf("stored credential %q generation %d: %w", f.cfg.Name, cur.Generation, err)
			}
		}
		rejected := cur != nil && !cur.RejectedAt.IsZero()
		base, publish := stored, false
		if authwatch.MayReplace(local, stored, publishPolicy(rejected)).Replace {
			base, publish = local, true
		}
		if rejected && !publish {
			// Another launcher's refresh of this generation got a permanent
			// answer: its refresh token is dead, and spending a POST on it
			// again (from every launcher) would only repeat that.
			return nil, &authwatch.RefreshError{Class: authwatch.ClassPermanent, Kind: "rejected", Code: cur.RejectedCode,
				Err: fmt.Errorf("stored generation %d was rejected by the token endpoint for another launcher; waiting for a new login", cur.Generation)}
		}
		next, err := r.fn(ctx, base)
		if err != nil {
			var re *authwatch.RefreshError
			if !publish && cur != nil && errors.As(err, &re) && re.Class == authwatch.ClassPermanent {
				code := re.Code
				if code == "" {
					code = fmt.Sprintf("http_%d", re.Status)
				}
				return nil, &pgstore.Rejection{Code: code, Err: err}
			}
			return nil, err
		}
		if next == nil {
			if !publish {
				return nil, nil
			}
			next = base
		}
		produced = next
		return newGeneration(next), nil
	})
	if err != nil {
		if produced != nil {
			// The POST redeemed a token but the database did not take the
			// result. Keep it locally (the child needs it); it is newer than
			// the stored generation, so it is published once the store is back.
			if cerr := f.commitLocal(context.WithoutCancel(ctx), produced); cerr != nil {
				return fmt.Errorf("store write failed (%v) and local write failed: %w", redactErr(err), cerr)
			}
			f.log.Warn("new credential kept locally; it will be published when the store answers", "error", redactErr(err))
			return nil
		}
		return redactedError(err)
	}
	if produced == nil {
		if rec != nil && rec.Generation > f.State().Generation {
			// Another launcher's refresh, found under the lock: take it
			// now rather than at the next poll (through a pooler, seconds).
			if _, err := f.syncRecord(ctx, conn, rec); err != nil && !conn.Lost(err) {
				f.log.Debug("adopting the generation found under the lock failed; the next poll retries", "error", redactErr(err))
			}
		}
		return nil
	}
	f.head = pgstore.Head{Generation: rec.Generation}
	f.setStored(rec.Generation, produced)
	f.log.Info("stored a new credential generation", "store", f.desc, "generation", rec.Generation)
	return f.commitLocal(context.WithoutCancel(ctx), produced)
}

func newGeneration(a *authwatch.AuthFile) *pgstore.New {
	lr, _ := a.LastRefresh()
	return &pgstore.New{AccountID: a.AccountID(), LastRefresh: lr, Data: a.Marshal()}
}
