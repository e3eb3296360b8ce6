package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/molecule-ai/codex-launch/fleet/seal"
	"github.com/molecule-ai/codex-launch/internal/testenv"
)

// dbs is the package's throw-away PostgreSQL cluster (TestMain).
var dbs *testenv.Databases

func TestMain(m *testing.M) {
	dbs = testenv.StartDatabases("t")
	code := m.Run()
	dbs.Close()
	os.Exit(code)
}

// freshDB gives the test its own empty database.
func freshDB(t *testing.T) string { return dbs.Fresh(t) }

type mode = testenv.Route

var eachMode = testenv.EachRoute

// viaDB gives the test its own empty database, reached m's way.
func viaDB(t *testing.T, m mode) string {
	u, _ := dbs.FreshVia(t, m)
	return u
}

func viaOpts(m mode, o Options) Options {
	o.Pooled = m.Pooled
	return o
}

func connect(t *testing.T, url string, opts Options) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Connect(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestConcurrentFirstConnectMigratesOnce(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		url := viaDB(t, m)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := Connect(context.Background(), url, viaOpts(m, Options{}))
				if err != nil {
					errs <- err
					return
				}
				c.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		c := connect(t, url, viaOpts(m, Options{}))
		var n, v int
		if err := c.c.QueryRow(context.Background(), `SELECT count(*), max(version) FROM codex_launch_schema`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != SchemaVersion || v != SchemaVersion {
			t.Fatalf("schema rows %d, version %d; want %d", n, v, SchemaVersion)
		}
	})
}

func TestNewerSchemaIsAClearErrorAndChangesNothing(t *testing.T) {
	url := freshDB(t)
	c := connect(t, url, Options{})
	ctx := context.Background()
	if _, err := c.c.Exec(ctx, `INSERT INTO codex_launch_schema (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.c.Exec(ctx, `ALTER TABLE codex_launch_credential ADD COLUMN future text`); err != nil {
		t.Fatal(err)
	}
	_, err := Connect(ctx, url, Options{})
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("want ErrSchemaTooNew naming version 99, got %v", err)
	}
	var n int
	c.c.QueryRow(ctx, `SELECT count(*) FROM codex_launch_schema`).Scan(&n)
	if n != SchemaVersion+1 {
		t.Fatalf("schema table changed: %d rows", n)
	}
}

func TestCreateAndCompareAndSet(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		c := connect(t, viaDB(t, m), viaOpts(m, Options{By: "a"}))
		ctx := context.Background()
		if r, err := c.Get(ctx, "default"); err != nil || r != nil {
			t.Fatalf("empty store: %v %v", r, err)
		}
		lr := time.Now().UTC().Truncate(time.Microsecond)
		ok, err := c.Create(ctx, "default", New{AccountID: "acct", LastRefresh: lr, Data: []byte("g1")})
		if err != nil || !ok {
			t.Fatalf("create: %v %v", ok, err)
		}
		if ok, err := c.Create(ctx, "default", New{Data: []byte("other")}); err != nil || ok {
			t.Fatalf("second create: %v %v", ok, err)
		}
		r, err := c.Get(ctx, "default")
		if err != nil || r.Generation != 1 || string(r.Data) != "g1" || r.AccountID != "acct" || !r.LastRefresh.Equal(lr) || r.UpdatedBy != "a" {
			t.Fatalf("get: %+v %v", r, err)
		}
		gen, err := c.CompareAndSet(ctx, "default", 1, New{AccountID: "acct", Data: []byte("g2")})
		if err != nil || gen != 2 {
			t.Fatalf("cas: %d %v", gen, err)
		}
		if _, err := c.CompareAndSet(ctx, "default", 1, New{Data: []byte("stale")}); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("stale cas: %v", err)
		}
		r, _ = c.Get(ctx, "default")
		if r.Generation != 2 || string(r.Data) != "g2" {
			t.Fatalf("after stale cas: %+v", r)
		}
		// Another credential in the same database is independent.
		if ok, _ := c.Create(ctx, "other", New{Data: []byte("x")}); !ok {
			t.Fatal("second name not created")
		}
	})
}

func TestLockedIsSingleFlightAndDiesWithItsConnection(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		url := viaDB(t, m)
		a := connect(t, url, viaOpts(m, Options{}))
		b := connect(t, url, viaOpts(m, Options{LockTimeout: 20 * time.Second}))
		ctx := context.Background()
		a.Create(ctx, "default", New{Data: []byte("g1")})

		inside := make(chan struct{})
		release := make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			_, err := a.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
				close(inside)
				<-release
				return &New{Data: []byte("g2")}, nil
			})
			aDone <- err
		}()
		<-inside
		bSaw := make(chan *Record, 1)
		bDone := make(chan struct{})
		go func() {
			defer close(bDone)
			lockedWaiting(ctx, b, func(ctx context.Context, cur *Record) (*New, error) {
				bSaw <- cur
				return nil, nil
			})
		}()
		select {
		case <-bSaw:
			t.Fatal("b entered while a held the lock")
		case <-time.After(300 * time.Millisecond):
		}
		close(release)
		if err := <-aDone; err != nil {
			t.Fatal(err)
		}
		if cur := <-bSaw; cur.Generation != 2 || string(cur.Data) != "g2" {
			t.Fatalf("b re-read %+v; want generation 2", cur)
		}
		<-bDone

		// A holder whose connection dies releases the lock.
		c := connect(t, url, viaOpts(m, Options{}))
		inside2, hang := make(chan struct{}), make(chan struct{})
		cDone := make(chan struct{})
		go func() {
			defer close(cDone)
			c.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
				close(inside2)
				<-hang
				return nil, nil
			})
		}()
		<-inside2
		c.c.PgConn().Conn().Close() // the process "dies": its socket closes
		defer func() { close(hang); <-cDone }()
		start := time.Now()
		r, err := lockedWaiting(ctx, b, func(ctx context.Context, cur *Record) (*New, error) {
			return &New{Data: []byte("g3")}, nil
		})
		if err != nil || r.Generation != 3 {
			t.Fatalf("take over: %+v %v", r, err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("lock held %v after its connection died", time.Since(start))
		}
	})
}

// A POST (fn) plus a lock wait longer than CallTimeout must not cost the
// write: the redeemed token would be lost and the next launcher would spend
// it again.
func TestLockedWriteTimeStartsAfterFn(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		url := viaDB(t, m)
		const call = 300 * time.Millisecond
		a := connect(t, url, viaOpts(m, Options{CallTimeout: call}))
		b := connect(t, url, viaOpts(m, Options{CallTimeout: call, LockTimeout: 10 * time.Second}))
		ctx := context.Background()
		a.Create(ctx, "default", New{Data: []byte("g1")})

		// b waits for a's lock longer than CallTimeout, then its fn takes
		// longer than CallTimeout too.
		release, aDone := holdLock(ctx, a, nil)
		time.AfterFunc(2*call, func() { close(release) })
		r, err := lockedWaiting(ctx, b, func(ctx context.Context, cur *Record) (*New, error) {
			time.Sleep(2 * call)
			return &New{Data: []byte("g2")}, nil
		})
		if err != nil || r.Generation != 2 {
			t.Fatalf("write after a long lock wait and fn: %+v %v", r, err)
		}
		if err := <-aDone; err != nil {
			t.Fatal(err)
		}
		if got, err := a.Get(ctx, "default"); err != nil || got.Generation != 2 || string(got.Data) != "g2" {
			t.Fatalf("stored %+v %v; want generation 2", got, err)
		}
		// A cancelled caller after fn still gets its generation written.
		cctx, cancel := context.WithCancel(ctx)
		r, err = a.Locked(cctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
			cancel()
			return &New{Data: []byte("g3")}, nil
		})
		if err != nil || r.Generation != 3 {
			t.Fatalf("write after the caller gave up: %+v %v", r, err)
		}
	})
}

// A server that stops answering must not hold a caller longer than
// CallTimeout: here every statement on the table waits behind another
// session's exclusive lock.
func TestExchangesAreBoundedByCallTimeout(t *testing.T) {
	url := freshDB(t)
	const call = 300 * time.Millisecond
	c := connect(t, url, Options{CallTimeout: call})
	ctx := context.Background()
	c.Create(ctx, "default", New{Data: []byte("g1")})
	rec, err := c.Get(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(ctx)
	tx, err := raw.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE codex_launch_credential IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// Each on a connection of its own: a timed-out exchange closes its
	// connection, and the next would fail at once whatever its bound.
	for name, exchange := range map[string]func(c *Conn) error{
		"Get":    func(c *Conn) error { _, err := c.Get(ctx, "default"); return err },
		"Create": func(c *Conn) error { _, err := c.Create(ctx, "other", New{Data: []byte("o1")}); return err },
		"CompareAndSet": func(c *Conn) error {
			_, err := c.CompareAndSet(ctx, "default", rec.Generation, New{Data: []byte("g2")})
			return err
		},
		"Reseal": func(c *Conn) error {
			_, err := c.Reseal(ctx, &Record{Name: "default", Generation: rec.Generation, Data: rec.Data})
			return err
		},
	} {
		opts := Options{CallTimeout: call}
		if name == "Reseal" {
			opts.Keys, _ = seal.ParseKeys([]byte("k1:" + key(t)))
		}
		c := connect(t, url, opts)
		done := make(chan error, 1)
		go func() { done <- exchange(c) }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s behind a held table lock succeeded", name)
			}
		case <-time.After(10 * call):
			t.Errorf("%s still waiting behind a held table lock after %v (CallTimeout %v)", name, 10*call, call)
		}
	}
}

func TestLockTimeoutIsClassified(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		url := viaDB(t, m)
		a := connect(t, url, viaOpts(m, Options{}))
		b := connect(t, url, viaOpts(m, Options{LockTimeout: 200 * time.Millisecond}))
		ctx := context.Background()
		a.Create(ctx, "default", New{Data: []byte("g1")})
		inside, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			a.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
				close(inside)
				<-release
				return nil, nil
			})
		}()
		<-inside
		defer func() { close(release); <-done }()
		_, err := b.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) { return nil, nil })
		if !errors.Is(err, ErrLockTimeout) {
			t.Fatalf("want ErrLockTimeout, got %v", err)
		}
	})
}

func TestNoticeOnEveryNewGeneration(t *testing.T) {
	url := freshDB(t)
	w := connect(t, url, Options{})
	ctx := context.Background()
	if err := w.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	// A wait that times out leaves the connection usable.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := w.WaitNotice(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout wait: %v", err)
	}
	cancel()
	if _, err := w.Get(ctx, "default"); err != nil {
		t.Fatalf("connection unusable after a timed-out wait: %v", err)
	}
	c := connect(t, url, Options{})
	c.Create(ctx, "default", New{Data: []byte("g1")})
	c.CompareAndSet(ctx, "default", 1, New{Data: []byte("g2")})
	for i := 0; i < 2; i++ {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		name, err := w.WaitNotice(wctx)
		cancel()
		if err != nil || name != "default" {
			t.Fatalf("notice %d: %q %v", i, name, err)
		}
	}
}

// holdLock has c take the row lock of "default" and hold it (inside fn)
// until release is closed; fn then returns next. done gets Locked's error.
func holdLock(ctx context.Context, c *Conn, next *New) (release chan struct{}, done chan error) {
	inside := make(chan struct{})
	release, done = make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := c.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
			close(inside)
			<-release
			return next, nil
		})
		done <- err
	}()
	<-inside
	return release, done
}

// lockedWaiting is Locked for a caller that waits for the lock: through a
// pooler Locked does not wait, so it looks again (as the fleet's parked
// requests do) until the connection's LockTimeout has passed.
func lockedWaiting(ctx context.Context, c *Conn, fn func(ctx context.Context, cur *Record) (*New, error)) (*Record, error) {
	deadline := time.Now().Add(c.opts.LockTimeout)
	for {
		r, err := c.Locked(ctx, "default", fn)
		if !errors.Is(err, ErrLockBusy) || time.Now().After(deadline) {
			return r, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func key(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func TestSealedAtRestAndKeyRotation(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		url := viaDB(t, m)
		k1, k2 := key(t), key(t)
		ring1, _ := seal.ParseKeys([]byte("k1:" + k1))
		ring21, _ := seal.ParseKeys([]byte("k2:" + k2 + "\nk1:" + k1))
		ctx := context.Background()
		secret := []byte(`{"tokens":{"refresh_token":"rt-secret-value"}}`)

		a := connect(t, url, viaOpts(m, Options{Keys: ring1}))
		a.Create(ctx, "default", New{Data: secret})
		var keyID string
		var payload []byte
		a.c.QueryRow(ctx, `SELECT key_id, payload FROM codex_launch_credential`).Scan(&keyID, &payload)
		if keyID != "k1" || bytes.Contains(payload, []byte("rt-secret-value")) {
			t.Fatalf("stored in clear or wrong key: %q", keyID)
		}
		if _, err := connect(t, url, viaOpts(m, Options{})).Get(ctx, "default"); !errors.Is(err, seal.ErrUnknownKey) {
			t.Fatalf("reading sealed row without keys: %v", err)
		}
		b := connect(t, url, viaOpts(m, Options{Keys: ring21}))
		r, err := b.Get(ctx, "default")
		if err != nil || !bytes.Equal(r.Data, secret) {
			t.Fatalf("read with rotated ring: %v", err)
		}
		if ok, err := b.Reseal(ctx, r); err != nil || !ok {
			t.Fatalf("reseal: %v %v", ok, err)
		}
		r2, _ := b.Get(ctx, "default")
		if r2.KeyID != "k2" || r2.Generation != r.Generation || !bytes.Equal(r2.Data, secret) {
			t.Fatalf("after reseal: key %q gen %d", r2.KeyID, r2.Generation)
		}
		// A launcher that only has the old key now gets a clear error, not garbage.
		if _, err := a.Get(ctx, "default"); !errors.Is(err, seal.ErrUnknownKey) || !strings.Contains(err.Error(), "k2") {
			t.Fatalf("old ring: %v", err)
		}
		// A tampered row fails authentication.
		b.c.Exec(ctx, `UPDATE codex_launch_credential SET payload = set_byte(payload, 20, get_byte(payload, 20) # 1)`)
		if _, err := b.Get(ctx, "default"); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("tampered row: %v", err)
		}
	})
}

func TestConnectErrorsNeverHoldThePassword(t *testing.T) {
	url := freshDB(t)
	cfg, _ := pgx.ParseConfig(url)
	bad := strings.Replace(url, cfg.Password, "wrong-Pa55word", 1)
	_, err := Connect(context.Background(), bad, Options{ConnectTimeout: 5 * time.Second})
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if strings.Contains(err.Error(), "wrong-Pa55word") {
		t.Fatalf("error holds the password: %v", err)
	}
	_, err = Connect(context.Background(), "postgres://u:Pa55word@127.0.0.1:1/x", Options{ConnectTimeout: 2 * time.Second})
	if err == nil || strings.Contains(err.Error(), "Pa55word") {
		t.Fatalf("refused connection error: %v", err)
	}
}

func TestMigratesAVersion1Database(t *testing.T) {
	url := freshDB(t)
	ctx := context.Background()
	raw, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(ctx)
	// What a launcher that knew only version 1 left behind, with a credential.
	for _, q := range []string{
		`CREATE TABLE codex_launch_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		migrations[0],
		`INSERT INTO codex_launch_schema (version) VALUES (1)`,
		`INSERT INTO codex_launch_credential (name, generation, account_id, payload) VALUES ('default', 7, 'acct', 'g7')`,
	} {
		if _, err := raw.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c := connect(t, url, Options{})
	if v, err := c.Version(ctx); err != nil || v != SchemaVersion {
		t.Fatalf("version %d %v, want %d", v, err, SchemaVersion)
	}
	r, err := c.Get(ctx, "default")
	if err != nil || r.Generation != 7 || string(r.Data) != "g7" || !r.RejectedAt.IsZero() {
		t.Fatalf("row after migration: %+v %v", r, err)
	}
	// A second start changes nothing.
	connect(t, url, Options{})
	var n int
	raw.QueryRow(ctx, `SELECT count(*) FROM codex_launch_schema`).Scan(&n)
	if n != SchemaVersion {
		t.Fatalf("%d version rows", n)
	}
}

func TestRejectionMarksTheGenerationUntilTheNext(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		c := connect(t, viaDB(t, m), viaOpts(m, Options{}))
		ctx := context.Background()
		c.Create(ctx, "default", New{Data: []byte("g1")})
		dead := errors.New("token refresh failed (permanent)")
		_, err := c.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
			return nil, &Rejection{Code: "refresh_token_reused", Err: dead}
		})
		if !errors.Is(err, dead) {
			t.Fatalf("Locked returned %v", err)
		}
		r, _ := c.Get(ctx, "default")
		if r.RejectedAt.IsZero() || r.RejectedCode != "refresh_token_reused" || r.Generation != 1 {
			t.Fatalf("not marked: %+v", r)
		}
		// An ordinary error marks nothing.
		c.CompareAndSet(ctx, "default", 1, New{Data: []byte("g2")})
		c.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) { return nil, dead })
		r, _ = c.Get(ctx, "default")
		if !r.RejectedAt.IsZero() || r.RejectedCode != "" || r.Generation != 2 {
			t.Fatalf("the next generation did not clear the mark, or a plain error set it: %+v", r)
		}
	})
}

// Through a pooler, a launcher finding another's refresh under way must not
// sit on one of the pool's few server sessions: Locked answers ErrLockBusy
// at once, no session waits on the row lock, and a later attempt sees the
// holder's generation.
func TestPooledWaiterHoldsNoServerSession(t *testing.T) {
	m := mode{Name: "pooled", Pooled: true}
	url, direct := dbs.FreshVia(t, m)
	a := connect(t, url, viaOpts(m, Options{}))
	b := connect(t, url, viaOpts(m, Options{LockTimeout: 20 * time.Second}))
	ctx := context.Background()
	a.Create(ctx, "default", New{Data: []byte("g1")})
	release, aDone := holdLock(ctx, a, &New{Data: []byte("g2")})
	defer func() {
		if release != nil {
			close(release)
			<-aDone
		}
	}()
	entered := false
	start := time.Now()
	_, err := b.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
		entered = true
		return nil, nil
	})
	if !errors.Is(err, ErrLockBusy) || !errors.Is(err, ErrLockTimeout) || entered {
		t.Fatalf("Locked while another holds the lock: entered %v, %v; want ErrLockBusy (an ErrLockTimeout)", entered, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Locked waited %v for a held lock through the pooler", d)
	}
	testenv.NoSessionWaitsOnALock(t, direct)
	close(release)
	release = nil
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	r, err := b.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) {
		if cur.Generation != 2 {
			t.Errorf("b saw generation %d, want 2", cur.Generation)
		}
		return nil, nil
	})
	if err != nil || r.Generation != 2 {
		t.Fatalf("after the holder committed: %+v %v", r, err)
	}
}

// Head is the stored generation and its rejection mark, without the payload.
func TestHead(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		c := connect(t, viaDB(t, m), viaOpts(m, Options{}))
		ctx := context.Background()
		if h, err := c.Head(ctx, "default"); err != nil || h != (Head{}) {
			t.Fatalf("no credential: %+v %v", h, err)
		}
		c.Create(ctx, "default", New{Data: []byte("g1")})
		c.CompareAndSet(ctx, "default", 1, New{Data: []byte("g2")})
		if h, err := c.Head(ctx, "default"); err != nil || h != (Head{Generation: 2}) {
			t.Fatalf("generation 2: %+v %v", h, err)
		}
		dead := &Rejection{Code: "invalid_grant", Err: errors.New("dead")}
		c.Locked(ctx, "default", func(ctx context.Context, cur *Record) (*New, error) { return nil, dead })
		if h, err := c.Head(ctx, "default"); err != nil || h != (Head{Generation: 2, Rejected: true}) {
			t.Fatalf("rejected generation 2: %+v %v", h, err)
		}
		if h, err := c.Head(ctx, "other"); err != nil || h != (Head{}) {
			t.Fatalf("another name: %+v %v", h, err)
		}
	})
}

// A pooled connection cannot LISTEN, but its writes still notify: a launcher
// the operator lets hold a direct session learns of them at once.
func TestPooledWriterWakesADirectListener(t *testing.T) {
	direct := freshDB(t)
	w := connect(t, direct, Options{})
	ctx := context.Background()
	if err := w.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	p := connect(t, dbs.Pooler(t).Route(direct), Options{Pooled: true})
	if err := p.Listen(ctx); !errors.Is(err, ErrNoListen) {
		t.Fatalf("Listen through the pooler: %v, want ErrNoListen", err)
	}
	p.Create(ctx, "default", New{Data: []byte("g1")})
	p.CompareAndSet(ctx, "default", 1, New{Data: []byte("g2")})
	for i := 0; i < 2; i++ {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		name, err := w.WaitNotice(wctx)
		cancel()
		if err != nil || name != "default" {
			t.Fatalf("notice %d: %q %v", i, name, err)
		}
	}
}
