package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is Debian's PgBouncer in transaction pooling mode in front of a
// test Postgres, on a loopback port, run as the same account as the server
// (PgBouncer refuses root). It can be stopped and started again on the same
// port, so tests can show what happens to clients while the pooler is away.
type PgBouncer struct {
	Dir  string // config, log and pid file; removed by Close
	Port int
	// PoolSize is default_pool_size: the server sessions per database and
	// user. MaxClients is max_client_conn.
	PoolSize, MaxClients int

	pg   *Postgres
	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPgBouncer installs Debian's pgbouncer package when it is missing (as
// root), writes its configuration and starts it in front of pg. The file
// descriptor limit is raised to its hard limit first (the pooler inherits it:
// each client is a descriptor). Call Close at the end.
func StartPgBouncer(pg *Postgres, poolSize, maxClients int) (*PgBouncer, error) {
	bin, err := LookCommand("pgbouncer", "pgbouncer")
	if err != nil {
		return nil, err
	}
	if err := RaiseFileLimit(); err != nil {
		return nil, err
	}
	b := &PgBouncer{pg: pg, bin: bin, PoolSize: poolSize, MaxClients: maxClients}
	if b.Dir, err = os.MkdirTemp("", "codex-launch-pgbouncer-"); err != nil {
		return nil, err
	}
	if err := b.configure(); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard limit;
// processes it starts afterwards inherit the raised limit.
func RaiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	return nil
}

func (b *PgBouncer) configure() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	b.Port = port
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
max_client_conn = %d
default_pool_size = %d
server_login_retry = 1
logfile = %s
pidfile = %s
log_connections = 0
log_disconnections = 0
`, b.pg.Port, port, filepath.Join(b.Dir, "userlist.txt"), b.MaxClients, b.PoolSize,
		filepath.Join(b.Dir, "pgbouncer.log"), filepath.Join(b.Dir, "pgbouncer.pid"))
	users := fmt.Sprintf("%q %q\n", b.pg.User, b.pg.Password)
	if err := os.Chmod(b.Dir, 0o755); err != nil {
		return err
	}
	for name, body := range map[string]string{"pgbouncer.ini": ini, "userlist.txt": users} {
		path := filepath.Join(b.Dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			return err
		}
		if b.pg.cred != nil {
			if err := os.Chown(path, int(b.pg.cred.Uid), int(b.pg.cred.Gid)); err != nil {
				return err
			}
		}
	}
	if b.pg.cred != nil {
		return os.Chown(b.Dir, int(b.pg.cred.Uid), int(b.pg.cred.Gid))
	}
	return nil
}

// Start starts the pooler (again) and waits until a query passes through it.
func (b *PgBouncer) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return errors.New("pgbouncer already running")
	}
	cmd := exec.Command(b.bin, filepath.Join(b.Dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: b.pg.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := &Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.cmd, b.done = cmd, done

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := b.ping()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			b.cmd = nil
			log, _ := os.ReadFile(filepath.Join(b.Dir, "pgbouncer.log"))
			return fmt.Errorf("pgbouncer exited at start: %s%s", lastLines(out.Bytes(), 5), lastLines(log, 5))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgbouncer not ready after 30s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *PgBouncer) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(b.URL("postgres"))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// Stop shuts the pooler down at once (SIGINT: its clients' connections end).
func (b *PgBouncer) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	interrupt(b.cmd, b.done, 10*time.Second)
	b.cmd = nil
	return nil
}

// Close stops the pooler and removes its directory.
func (b *PgBouncer) Close() {
	b.Stop()
	if b.Dir != "" {
		os.RemoveAll(b.Dir)
	}
}

// URL is a connection URL for database db through the pooler.
func (b *PgBouncer) URL(db string) string {
	return b.Route(b.pg.URL(db))
}

// Route turns a URL of the server into the same URL through the pooler.
func (b *PgBouncer) Route(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	return u.String()
}

// Pooler is a PgBouncer in front of the package's cluster, started at the
// first call (a small pool: the tests show that few server sessions carry
// many launchers) and stopped by Close. A pooler that cannot start skips
// (or, under CI, fails) the test with the reason.
func (d *Databases) Pooler(tb testing.TB) *PgBouncer {
	tb.Helper()
	pg := d.Cluster(tb)
	d.poolerOnce.Do(func() { d.pooler, d.poolerErr = StartPgBouncer(pg, PoolerTestPoolSize, 2000) })
	if d.poolerErr != nil {
		Unavailable(tb, "PgBouncer: "+d.poolerErr.Error())
	}
	if err := d.pooler.alive(); err != nil {
		tb.Fatal(err)
	}
	return d.pooler
}

// alive is nil unless the pooler exited without a Stop (a crash): then it
// says so with the end of its log, rather than leaving a test to find its
// launchers refused.
func (b *PgBouncer) alive() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	select {
	case <-b.done:
	default:
		return nil
	}
	log, _ := os.ReadFile(filepath.Join(b.Dir, "pgbouncer.log"))
	return fmt.Errorf("the tests' PgBouncer exited by itself (%v): %s", b.cmd.ProcessState, lastLines(log, 10))
}

// PoolerTestPoolSize is default_pool_size of the tests' pooler.
const PoolerTestPoolSize = 4

// Route is how a test reaches PostgreSQL: directly (a session per client) or
// through the pooler in transaction mode.
type Route struct {
	Name   string
	Pooled bool
}

// Routes are both ways; tests of the credential store run over each.
var Routes = []Route{{"direct", false}, {"pooled", true}}

// EachRoute runs fn as a subtest per route.
func EachRoute(t *testing.T, fn func(t *testing.T, r Route)) {
	for _, r := range Routes {
		t.Run(r.Name, func(t *testing.T) { fn(t, r) })
	}
}

// FreshVia creates an empty database for the test and returns its URL as
// the route reaches it, and its direct URL (for the test's own checks).
func (d *Databases) FreshVia(tb testing.TB, r Route) (url, direct string) {
	tb.Helper()
	direct = d.Fresh(tb)
	if r.Pooled {
		return d.Pooler(tb).Route(direct), direct
	}
	return direct, direct
}
