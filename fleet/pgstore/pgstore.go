// Package pgstore keeps shared credentials in PostgreSQL: the schema and its
// migrations, generation-numbered rows written by compare-and-set, the
// single-flight transaction (a row lock that dies with its connection), and
// LISTEN/NOTIFY so that followers learn of a new generation at once.
//
// Through a transaction pooler (Options.Pooled: PgBouncer in transaction
// mode) every statement goes in the simple protocol (no named prepared
// statement), no setting or lock outlives its transaction, and there is no
// LISTEN: the pooler hands each transaction whichever server session is free.
//
// It stores opaque credential bytes (optionally sealed); what a credential
// means is the caller's business. A Conn is one database connection and is
// not safe for concurrent use: the fleet follower owns it.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/molecule-ai/codex-launch/fleet/seal"
	"github.com/molecule-ai/codex-launch/internal/secreturl"
)

// Channel is the LISTEN/NOTIFY channel; the payload is the credential name.
const Channel = "codex_launch_credential"

// SchemaVersion is the newest schema this code knows.
const SchemaVersion = 2

// migrations[i] brings the schema from version i to i+1. Append only.
var migrations = []string{
	`CREATE TABLE IF NOT EXISTS codex_launch_credential (
		name         text PRIMARY KEY,
		generation   bigint NOT NULL CHECK (generation > 0),
		account_id   text NOT NULL DEFAULT '',
		last_refresh timestamptz,
		key_id       text NOT NULL DEFAULT '',
		payload      bytea NOT NULL,
		updated_at   timestamptz NOT NULL DEFAULT now(),
		updated_by   text NOT NULL DEFAULT ''
	)`,
	// v2: a generation whose refresh token the endpoint rejected for good is
	// marked, so the other launchers do not each spend a POST on it.
	`ALTER TABLE codex_launch_credential
		ADD COLUMN IF NOT EXISTS rejected_at timestamptz,
		ADD COLUMN IF NOT EXISTS rejected_code text NOT NULL DEFAULT ''`,
}

// migrationLock is the advisory lock key that serialises migrations of all
// launchers on one database ("codex-launch schema" folded into 63 bits).
const migrationLock int64 = 0x636f646578736368

// ErrSchemaTooNew means the database was migrated by a newer codex-launch.
// Nothing was changed; upgrade this launcher.
var ErrSchemaTooNew = errors.New("credential store schema is newer than this codex-launch knows")

// ErrSuperseded means a compare-and-set lost: the generation moved on.
var ErrSuperseded = errors.New("stored credential generation moved on")

// Record is one stored generation of a credential.
type Record struct {
	Name        string
	Generation  int64
	AccountID   string
	LastRefresh time.Time // zero when unknown
	KeyID       string    // "" when stored in clear
	Data        []byte    // the credential, opened
	UpdatedAt   time.Time
	UpdatedBy   string
	// RejectedAt is set when a launcher's refresh of this generation got a
	// permanent answer (RejectedCode, e.g. refresh_token_reused); zero
	// otherwise. The next generation clears it.
	RejectedAt   time.Time
	RejectedCode string
}

// Options configure a connection.
type Options struct {
	Keys *seal.Keyring // nil: store in clear (and refuse to read sealed rows)
	// By is written beside each generation (a host or workspace name), to
	// see who refreshed.
	By string
	// LockTimeout bounds the wait for another launcher's refresh lock.
	LockTimeout time.Duration
	// IdleTxTimeout ends a session whose transaction idles longer (a refresher
	// hung between its lock and its commit): the lock then dies with it.
	IdleTxTimeout time.Duration
	// ConnectTimeout bounds connecting (and TCP keepalive probes follow it).
	ConnectTimeout time.Duration
	// CallTimeout bounds one exchange with a live server (default 15 s):
	// each of Get, Create, CompareAndSet and Reseal, and in Locked the
	// statements before the lock wait (which LockTimeout bounds on top) and
	// the write of a new generation after fn, which starts only once fn has
	// returned, so a long lock wait or POST does not eat it.
	// A server that does not answer within it is taken for gone (a
	// half-open connection would otherwise block until keepalive gives up).
	CallTimeout time.Duration
	// Pooled: the URL leads to a transaction pooler. Queries use the simple
	// protocol, session settings become transaction-local, Listen is refused,
	// and Locked does not wait on the row lock holding a server session: it
	// tries once (NOWAIT) and returns ErrLockBusy, so waiters of a refresh
	// leave the pool's few server sessions to others and decide themselves
	// when to look again (Head tells cheaply whether a new generation came).
	Pooled bool
}

// DefaultCallTimeout is Options.CallTimeout when unset.
const DefaultCallTimeout = 15 * time.Second

// DefaultLockTimeout is Options.LockTimeout when unset: a refresh is one
// POST, so a lock held this long belongs to a refresher that is stuck.
const DefaultLockTimeout = time.Minute

// rollbackTimeout bounds a rollback; it never listens to the caller's ctx,
// which may be what ended the transaction.
const rollbackTimeout = 5 * time.Second

// Conn is one connection to the credential store.
type Conn struct {
	c    *pgx.Conn
	opts Options
}

// Connect opens a connection and migrates the schema. Errors never carry the
// URL's password (see Redact).
func Connect(ctx context.Context, rawURL string, opts Options) (*Conn, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.IdleTxTimeout <= 0 {
		opts.IdleTxTimeout = 2 * time.Minute
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("credential store URL %s: %w", secreturl.Mask(rawURL), errors.New(secreturl.Mask(err.Error())))
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "codex-launch"
	}
	if opts.Pooled {
		// A pooler shares server sessions: nothing may be prepared or set
		// for the session (PgBouncer refuses unknown startup parameters).
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		// A statement whose ctx ends is cut by closing the connection, not
		// by a cancel request: the pooler drops the server session of a
		// client that left mid-transaction anyway, and cancel requests
		// crash some PgBouncer releases (1.18) when their client goes first.
		cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
		}
	} else {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(opts.IdleTxTimeout.Milliseconds())
	}
	cfg.ConnectTimeout = opts.ConnectTimeout
	d := &net.Dialer{KeepAlive: 15 * time.Second, Timeout: opts.ConnectTimeout}
	cfg.DialFunc = d.DialContext
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to credential store %s: %s", secreturl.Mask(rawURL), redactErr(err, cfg.Password))
	}
	conn := &Conn{c: c, opts: opts}
	if err := conn.migrate(ctx); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// redactErr flattens err to a string without the password (pgx never
// prints it today; this keeps it so if that changes).
func redactErr(err error, password string) error {
	s := secreturl.MaskSecret(secreturl.Mask(err.Error()), password)
	return &StoreError{msg: s, cause: err}
}

// StoreError is a connection or query error with secrets removed from its
// text; the original stays reachable through Unwrap for errors.Is/As.
type StoreError struct {
	msg   string
	cause error
}

func (e *StoreError) Error() string { return e.msg }
func (e *StoreError) Unwrap() error { return e.cause }

// Close ends the session (any lock it holds dies with it).
func (c *Conn) Close() {
	if c != nil && c.c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.c.Close(ctx)
	}
}

// IsClosed reports whether the connection is gone.
func (c *Conn) IsClosed() bool { return c.c.IsClosed() }

// Lost reports whether err (from a call on c) means the database cannot be
// used through this connection: the connection closed, or the server (or a
// pooler in front of it) answered that it is shutting down, cannot reach
// the database or has no session to give. A pooler keeps the client
// connection open through a database restart, so such answers count as an
// outage, not as a bad credential.
func (c *Conn) Lost(err error) bool {
	if c.IsClosed() {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch {
	case strings.HasPrefix(pgErr.Code, "08"), // connection_exception (PgBouncer: 08P01)
		strings.HasPrefix(pgErr.Code, "57P"), // admin_shutdown, crash_shutdown, cannot_connect_now
		pgErr.Code == "53300":                // too_many_connections
		return true
	}
	return false
}

// Version reports the schema version in the database (0: none).
func (c *Conn) Version(ctx context.Context) (int, error) {
	var v int
	err := c.c.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM codex_launch_schema`).Scan(&v)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return 0, nil
		}
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrate brings the schema to SchemaVersion. The common case (already
// current) is one query without a lock; otherwise one transaction under an
// advisory lock, so launchers starting together migrate once.
func (c *Conn) migrate(ctx context.Context) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("%w: database has version %d, this launcher knows up to %d", ErrSchemaTooNew, v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	return pgx.BeginFunc(ctx, c.c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS codex_launch_schema (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema table: %w", err)
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM codex_launch_schema`).Scan(&cur); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if cur > SchemaVersion {
			return fmt.Errorf("%w: database has version %d, this launcher knows up to %d", ErrSchemaTooNew, cur, SchemaVersion)
		}
		for next := cur; next < SchemaVersion; next++ {
			if _, err := tx.Exec(ctx, migrations[next]); err != nil {
				return fmt.Errorf("migrate schema to version %d: %w", next+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO codex_launch_schema (version) VALUES ($1)`, next+1); err != nil {
				return fmt.Errorf("record schema version %d: %w", next+1, err)
			}
		}
		return nil
	})
}

// ErrNoListen is Listen's answer through a transaction pooler.
var ErrNoListen = errors.New("LISTEN needs a session of its own; a transaction pooler does not keep one")

// Listen subscribes this session to generation notices.
func (c *Conn) Listen(ctx context.Context) error {
	if c.opts.Pooled {
		return ErrNoListen
	}
	if _, err := c.c.Exec(ctx, `LISTEN `+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return nil
}

// WaitNotice waits for a notice and returns the credential name it names.
// When ctx ends first it returns ctx's error and the connection stays usable.
func (c *Conn) WaitNotice(ctx context.Context) (string, error) {
	n, err := c.c.WaitForNotification(ctx)
	if err != nil {
		if ctx.Err() != nil && !c.c.IsClosed() {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("wait for notice: %w", err)
	}
	return n.Payload, nil
}

const selectRow = `SELECT generation, account_id, last_refresh, key_id, payload, updated_at, updated_by,
	rejected_at, rejected_code FROM codex_launch_credential WHERE name = $1`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (c *Conn) get(ctx context.Context, q querier, sql, name string) (*Record, error) {
	var (
		r       = Record{Name: name}
		lr, rej *time.Time
		payload []byte
	)
	err := q.QueryRow(ctx, sql, name).Scan(&r.Generation, &r.AccountID, &lr, &r.KeyID, &payload, &r.UpdatedAt, &r.UpdatedBy,
		&rej, &r.RejectedCode)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credential %q: %w", name, err)
	}
	if lr != nil {
		r.LastRefresh = *lr
	}
	if rej != nil {
		r.RejectedAt = *rej
	}
	if r.Data, err = c.open(name, r.KeyID, payload); err != nil {
		return nil, err
	}
	return &r, nil
}

// Get reads the current generation of a credential; nil when there is none.
func (c *Conn) Get(ctx context.Context, name string) (*Record, error) {
	ctx, cancel := c.exchange(ctx)
	defer cancel()
	return c.get(ctx, c.c, selectRow, name)
}

// Head is what a follower polls for: which generation is stored and whether
// it was rejected, without its payload (one short row, nothing to unseal).
type Head struct {
	Generation int64 // 0: the credential does not exist
	Rejected   bool
}

// Head reads the credential's Head.
func (c *Conn) Head(ctx context.Context, name string) (Head, error) {
	ctx, cancel := c.exchange(ctx)
	defer cancel()
	var h Head
	err := c.c.QueryRow(ctx, `SELECT generation, rejected_at IS NOT NULL FROM codex_launch_credential WHERE name = $1`, name).
		Scan(&h.Generation, &h.Rejected)
	if errors.Is(err, pgx.ErrNoRows) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("read credential %q: %w", name, err)
	}
	return h, nil
}

// exchange bounds one exchange with the server by Options.CallTimeout.
func (c *Conn) exchange(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.CallTimeout)
}

func (c *Conn) open(name, keyID string, payload []byte) ([]byte, error) {
	if keyID == "" {
		return payload, nil
	}
	if c.opts.Keys == nil {
		return nil, fmt.Errorf("credential %q is sealed with key %q and no keys are configured: %w", name, keyID, seal.ErrUnknownKey)
	}
	pt, err := c.opts.Keys.Open(keyID, payload, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("credential %q: %w", name, err)
	}
	return pt, nil
}

func (c *Conn) sealData(name string, data []byte) (string, []byte, error) {
	if c.opts.Keys == nil {
		return "", data, nil
	}
	return c.opts.Keys.Seal(data, []byte(name))
}

// New is what a writer supplies for the next generation.
type New struct {
	AccountID   string
	LastRefresh time.Time
	Data        []byte
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// Create stores generation 1 when the credential does not exist yet. It
// reports false (and changes nothing) when another launcher was first.
func (c *Conn) Create(ctx context.Context, name string, n New) (bool, error) {
	ctx, cancel := c.exchange(ctx)
	defer cancel()
	keyID, payload, err := c.sealData(name, n.Data)
	if err != nil {
		return false, err
	}
	var created bool
	err = pgx.BeginFunc(ctx, c.c, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO codex_launch_credential
			(name, generation, account_id, last_refresh, key_id, payload, updated_by)
			VALUES ($1, 1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
			name, n.AccountID, nullTime(n.LastRefresh), keyID, payload, c.opts.By)
		if err != nil {
			return err
		}
		if created = tag.RowsAffected() == 1; created {
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, name)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("create credential %q: %w", name, err)
	}
	return created, nil
}

// CompareAndSet writes the next generation if the stored one is still
// expectGen, and returns the new generation; ErrSuperseded when it moved on.
func (c *Conn) CompareAndSet(ctx context.Context, name string, expectGen int64, n New) (int64, error) {
	ctx, cancel := c.exchange(ctx)
	defer cancel()
	var gen int64
	err := pgx.BeginFunc(ctx, c.c, func(tx pgx.Tx) error {
		var err error
		gen, err = c.cas(ctx, tx, name, expectGen, n)
		return err
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

func (c *Conn) cas(ctx context.Context, tx pgx.Tx, name string, expectGen int64, n New) (int64, error) {
	keyID, payload, err := c.sealData(name, n.Data)
	if err != nil {
		return 0, err
	}
	var gen int64
	err = tx.QueryRow(ctx, `UPDATE codex_launch_credential
		SET generation = generation + 1, account_id = $3, last_refresh = $4, key_id = $5, payload = $6,
		    updated_at = now(), updated_by = $7, rejected_at = NULL, rejected_code = ''
		WHERE name = $1 AND generation = $2 RETURNING generation`,
		name, expectGen, n.AccountID, nullTime(n.LastRefresh), keyID, payload, c.opts.By).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("credential %q generation %d: %w", name, expectGen, ErrSuperseded)
	}
	if err != nil {
		return 0, fmt.Errorf("write credential %q: %w", name, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, name); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	return gen, nil
}

// Rejection, returned (wrapped) by a Locked fn, marks the generation it saw
// as rejected for good (in the same transaction) before Err is returned.
type Rejection struct {
	Code string // token-free, e.g. "refresh_token_reused"
	Err  error
}

func (r *Rejection) Error() string { return r.Err.Error() }
func (r *Rejection) Unwrap() error { return r.Err }

// ErrLockTimeout means another launcher held the refresh lock longer than
// Options.LockTimeout.
var ErrLockTimeout = errors.New("timed out waiting for the credential's refresh lock")

// ErrLockBusy means another launcher holds the refresh lock now (Locked
// through a pooler, which does not wait for it). It wraps ErrLockTimeout:
// a caller that does not look again sees the same failure.
var ErrLockBusy = fmt.Errorf("credential's refresh lock is held by another launcher: %w", ErrLockTimeout)

// Locked runs fn with the current record while holding the credential's row
// lock (SELECT ... FOR UPDATE), in a transaction that dies with this session:
// a launcher killed inside fn releases the lock as its connection closes (a
// pooler drops the server session of a client that left mid-transaction).
// fn returns the next generation or nil for no change; a non-nil result is
// written (compare-and-set) and announced before the lock is released.
// cur is nil when the credential does not exist (then a result creates
// generation 1). It returns the record now stored.
func (c *Conn) Locked(ctx context.Context, name string, fn func(ctx context.Context, cur *Record) (*New, error)) (*Record, error) {
	// The lock phase listens to ctx and is bounded: the server gives up the
	// lock wait after LockTimeout (through a pooler it does not wait at
	// all), and a server that does not answer at all is given CallTimeout
	// on top.
	lctx, lcancel := context.WithTimeout(ctx, c.opts.LockTimeout+c.opts.CallTimeout)
	defer lcancel()
	tx, cur, err := c.lockRow(lctx, name)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
			defer cancel()
			tx.Rollback(rctx)
		}
	}()
	lcancel()
	next, err := fn(ctx, cur)
	// Once fn has returned (its POST may have redeemed a refresh token), the
	// write must not listen to ctx: a redeemed token that is not stored is a
	// lost login. Its time starts now, whatever the lock wait and the POST took.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.CallTimeout)
	defer cancel()
	var rej *Rejection
	if err != nil && errors.As(err, &rej) && cur != nil {
		code := rej.Code
		if len(code) > 100 {
			code = code[:100]
		}
		if _, merr := tx.Exec(wctx, `UPDATE codex_launch_credential SET rejected_at = now(), rejected_code = $3
			WHERE name = $1 AND generation = $2`, name, cur.Generation, code); merr == nil {
			if cerr := tx.Commit(wctx); cerr == nil {
				committed = true
			}
		}
		return nil, rej.Err
	}
	if err != nil {
		return nil, err
	}
	if next == nil {
		return cur, nil
	}
	out := &Record{Name: name, Generation: 1, AccountID: next.AccountID, LastRefresh: next.LastRefresh, Data: next.Data, UpdatedBy: c.opts.By}
	if cur == nil {
		keyID, payload, err := c.sealData(name, next.Data)
		if err != nil {
			return nil, err
		}
		tag, err := tx.Exec(wctx, `INSERT INTO codex_launch_credential
			(name, generation, account_id, last_refresh, key_id, payload, updated_by)
			VALUES ($1, 1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
			name, next.AccountID, nullTime(next.LastRefresh), keyID, payload, c.opts.By)
		if err != nil {
			return nil, fmt.Errorf("create credential %q: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return nil, fmt.Errorf("credential %q created meanwhile: %w", name, ErrSuperseded)
		}
		if _, err := tx.Exec(wctx, `SELECT pg_notify($1, $2)`, Channel, name); err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		out.KeyID = keyID
	} else {
		if out.Generation, err = c.cas(wctx, tx, name, cur.Generation, *next); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(wctx); err != nil {
		return nil, fmt.Errorf("commit credential %q: %w", name, err)
	}
	committed = true
	return out, nil
}

// lockRow begins a transaction and takes the credential's row lock in it
// (cur nil: no row yet). A lock another session holds past LockTimeout is
// ErrLockTimeout, and through a pooler, at once, ErrLockBusy; the
// transaction is then over.
func (c *Conn) lockRow(ctx context.Context, name string) (pgx.Tx, *Record, error) {
	tx, err := c.c.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	sql, set := selectRow+` FOR UPDATE`, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, c.opts.LockTimeout.Milliseconds())
	if c.opts.Pooled {
		// The session's bound on a hung refresher, for this transaction.
		sql, set = selectRow+` FOR UPDATE NOWAIT`, fmt.Sprintf(`SET LOCAL idle_in_transaction_session_timeout = %d`, c.opts.IdleTxTimeout.Milliseconds())
	}
	cur, err := func() (*Record, error) {
		if _, err := tx.Exec(ctx, set); err != nil {
			return nil, fmt.Errorf("set transaction bounds: %w", err)
		}
		cur, err := c.get(ctx, tx, sql, name)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			if c.opts.Pooled {
				return nil, fmt.Errorf("credential %q: %w", name, ErrLockBusy)
			}
			return nil, fmt.Errorf("credential %q: %w", name, ErrLockTimeout)
		}
		return cur, err
	}()
	if err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		defer cancel()
		tx.Rollback(rctx)
		return nil, nil, err
	}
	return tx, cur, nil
}

// Reseal rewrites a generation sealed with an older key (or in clear) under
// the current write key, without changing its generation; a no-op without
// keys or when the generation moved on.
func (c *Conn) Reseal(ctx context.Context, r *Record) (bool, error) {
	if c.opts.Keys == nil || r.KeyID == c.opts.Keys.WriteKeyID() {
		return false, nil
	}
	ctx, cancel := c.exchange(ctx)
	defer cancel()
	keyID, payload, err := c.sealData(r.Name, r.Data)
	if err != nil {
		return false, err
	}
	tag, err := c.c.Exec(ctx, `UPDATE codex_launch_credential SET key_id = $3, payload = $4
		WHERE name = $1 AND generation = $2 AND key_id <> $3`, r.Name, r.Generation, keyID, payload)
	if err != nil {
		return false, fmt.Errorf("reseal credential %q: %w", r.Name, err)
	}
	return tag.RowsAffected() == 1, nil
}
