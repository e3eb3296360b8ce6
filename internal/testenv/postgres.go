package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throw-away PostgreSQL cluster for tests and benchmarks: its
// own data directory in a temporary directory, a unix socket there too, and a
// TCP listener on 127.0.0.1 only. Durability is switched off (fsync=off):
// the cluster lives for one test package.
//
// It can be stopped and started again on the same port and data, so tests can
// show what happens to clients while the database is away.
type Postgres struct {
	Dir      string // everything lives below it; removed by Close
	Port     int
	User     string // the superuser the tests connect as
	Password string

	bin  string
	cred *syscall.Credential
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPostgres installs Debian's postgresql package when it is missing (as
// root), creates a cluster and starts it. Call Close at the end (TestMain).
func StartPostgres() (*Postgres, error) {
	initdb, err := LookCommand("initdb", "postgresql")
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: filepath.Dir(initdb), User: "codex", Password: "pw-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: the cluster belongs to the
		// postgres account that the Debian package creates.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if p.Dir, err = os.MkdirTemp("", "codex-launch-pg-"); err != nil {
		return nil, err
	}
	if err := p.create(initdb); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// create makes the cluster in p.Dir (as the postgres account when p.cred is
// set), picks a free port and starts the server.
func (p *Postgres) create(initdb string) error {
	if err := os.Chmod(p.Dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"data", "sock"} {
		if err := os.Mkdir(filepath.Join(p.Dir, d), 0o700); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(p.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o600); err != nil {
		return err
	}
	if p.cred != nil {
		for _, f := range []string{"data", "sock", "pwfile"} {
			if err := os.Chown(filepath.Join(p.Dir, f), int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				return err
			}
		}
	}
	cmd := exec.Command(initdb, "-D", filepath.Join(p.Dir, "data"), "-U", p.User, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	cmd.Dir = p.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(out, 5))
	}
	os.Remove(pwfile)
	var err error
	if p.Port, err = freePort(); err != nil {
		return err
	}
	return p.Start()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server (again) and waits until it accepts connections.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("postgres already running")
	}
	logf, err := os.OpenFile(filepath.Join(p.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.Dir, "data"),
		"-k", filepath.Join(p.Dir, "sock"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=400", "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			p.cmd = nil
			b, _ := os.ReadFile(filepath.Join(p.Dir, "postgres.log"))
			return fmt.Errorf("postgres exited at start: %s", lastLines(b, 5))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: sessions are ended) and keeps
// its data for a later Start.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	interrupt(p.cmd, p.done, 20*time.Second)
	p.cmd = nil
	return nil
}

// interrupt stops a server the tests started: SIGINT (PostgreSQL's fast
// shutdown, PgBouncer's immediate one), SIGKILL when it is not gone after
// grace. done is closed once the process has been waited for.
func interrupt(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// Close stops the server and removes its directory.
func (p *Postgres) Close() {
	p.Stop()
	if p.Dir != "" {
		os.RemoveAll(p.Dir)
	}
}

// URL is a connection URL for database db (with the password).
func (p *Postgres) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(p.User, p.Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a fresh database, so that each test has its own
// schema and rows, and returns its URL.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return p.URL(name), nil
}

// Databases is one throw-away cluster for a test package, handing each test
// a database of its own. Start it once, where the tests that need it run
// (TestMain, or the one test that owns them), and Close it after them; a
// cluster that could not start makes Cluster and Fresh skip (or, under CI,
// fail) the tests that need it, with the reason.
type Databases struct {
	pg     *Postgres
	err    error
	prefix string
	n      atomic.Int64

	poolerOnce sync.Once
	pooler     *PgBouncer
	poolerErr  error
}

// StartDatabases starts the cluster; prefix starts every database's name.
func StartDatabases(prefix string) *Databases {
	pg, err := StartPostgres()
	return &Databases{pg: pg, err: err, prefix: prefix}
}

// Close stops the cluster (and its pooler) and removes their files.
func (d *Databases) Close() {
	if d.pooler != nil {
		d.pooler.Close()
	}
	if d.pg != nil {
		d.pg.Close()
	}
}

// Cluster is the running cluster (for tests that stop and start it).
func (d *Databases) Cluster(tb testing.TB) *Postgres {
	tb.Helper()
	if d.err != nil {
		Unavailable(tb, "PostgreSQL: "+d.err.Error())
	}
	return d.pg
}

// Fresh creates an empty database for the test and returns its URL.
func (d *Databases) Fresh(tb testing.TB) string {
	tb.Helper()
	pg := d.Cluster(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u, err := pg.CreateDatabase(ctx, fmt.Sprintf("%s%d", d.prefix, d.n.Add(1)))
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// NoSessionWaitsOnALock fails the test when a session of the database at
// directURL (its own URL, not a pooler's) waits on a lock: through a pooler
// a launcher waiting for another's refresh must hold no server session.
func NoSessionWaitsOnALock(tb testing.TB, directURL string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := pgx.Connect(ctx, directURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close(ctx)
	var waiting int
	if err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
		tb.Fatal(err)
	}
	if waiting != 0 {
		tb.Fatalf("%d server sessions wait on a lock", waiting)
	}
}
