package dirhandle

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/molecule-ai/codex-launch/internal/testenv"
	"golang.org/x/sys/unix"
)

func openT(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestEntriesAreNeverFollowed: a link, a FIFO, a device, a socket or a
// directory in the directory is refused, named with its type, without
// blocking and without touching what a link names.
func TestEntriesAreNeverFollowed(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(outside, filepath.Join(dir, "link"))
	os.Symlink(filepath.Join(t.TempDir(), "missing"), filepath.Join(dir, "dangling"))
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	if err := unix.Bind(sock, &unix.SockaddrUnix{Name: filepath.Join(dir, "sock")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"link": "symbolic link", "dangling": "symbolic link", "fifo": "FIFO", "sub": "directory", "sock": "socket"}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(dir, "dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))); err == nil {
			want["dev"] = "character device"
		}
	}
	d := openT(t, dir)
	for name, typ := range want {
		if _, err := d.ReadFile(name, 1<<20); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), typ) || !strings.Contains(err.Error(), name) {
			t.Errorf("ReadFile(%s) = %v, want ErrNotRegular naming %q", name, err, typ)
		}
		for _, flag := range []int{os.O_RDWR | os.O_CREATE, os.O_WRONLY} {
			if f, _, err := d.OpenFile(name, flag, 0o600, &Owner{UID: 4321, GID: 4321}); !errors.Is(err, ErrNotRegular) {
				if f != nil {
					f.Close()
				}
				t.Errorf("OpenFile(%s, %#x) = %v, want ErrNotRegular", name, flag, err)
			}
		}
	}
	var st syscall.Stat_t
	syscall.Stat(outside, &st)
	if b, _ := os.ReadFile(outside); string(b) != "secret" || st.Uid != uint32(os.Geteuid()) || st.Mode&0o777 != 0o600 {
		t.Errorf("outside file changed: %q uid %d mode %o", b, st.Uid, st.Mode&0o777)
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(filepath.Join(dir, "dangling")), "missing")); err == nil {
		t.Error("a dangling link's target was created")
	}
}

func TestReadFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 1025), 0o600)
	os.WriteFile(filepath.Join(dir, "fits"), bytes.Repeat([]byte("x"), 1024), 0o600)
	d := openT(t, dir)
	if _, err := d.ReadFile("big", 1024); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big: %v, want ErrTooLarge", err)
	}
	if b, err := d.ReadFile("fits", 1024); err != nil || len(b) != 1024 {
		t.Errorf("fits: %d bytes, %v", len(b), err)
	}
	if _, err := d.ReadFile("none", 1024); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v, want ErrNotExist", err)
	}
}

// TestOpenRefusesPlantedLinks: a link on the way to the directory that a
// user other than root (or us) owns, or that sits in a directory such a
// user owns, is refused; one root made in a root directory is followed.
func TestOpenRefusesPlantedLinks(t *testing.T) {
	testenv.RequireRoot(t)
	const uid = 4321
	base := t.TempDir()
	target := filepath.Join(base, "target")
	os.Mkdir(target, 0o700)
	agentHome := filepath.Join(base, "agent")
	os.Mkdir(agentHome, 0o755)
	os.Chown(agentHome, uid, uid)

	// A link the agent made (its own, in its own directory).
	planted := filepath.Join(agentHome, ".codex")
	os.Symlink(target, planted)
	os.Lchown(planted, uid, uid)
	if d, err := Open(planted); !errors.Is(err, ErrUntrustedLink) {
		d.Close()
		t.Errorf("agent's link: %v, want ErrUntrustedLink", err)
	}
	// A root-owned link in the agent's directory: the agent could have
	// swapped it.
	os.Remove(planted)
	os.Symlink(target, planted)
	if d, err := Open(planted); !errors.Is(err, ErrUntrustedLink) {
		d.Close()
		t.Errorf("root's link in the agent's directory: %v, want ErrUntrustedLink", err)
	}
	// A link inside the path, not at its end.
	os.Remove(planted)
	os.Symlink(base, planted)
	os.Lchown(planted, uid, uid)
	if d, err := Open(filepath.Join(planted, "target")); !errors.Is(err, ErrUntrustedLink) {
		d.Close()
		t.Errorf("link in the middle: %v, want ErrUntrustedLink", err)
	}
	// MakeAll creates nothing beyond such a link.
	if d, err := MakeAll(filepath.Join(planted, "new", "dir"), 0o700, &Owner{UID: uid, GID: uid}); !errors.Is(err, ErrUntrustedLink) {
		d.Close()
		t.Errorf("MakeAll through the agent's link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(base, "new")); err == nil {
		t.Error("MakeAll created a directory behind the agent's link")
	}
	// Root's link in root's directory (the image's volume link) is followed.
	vol := filepath.Join(base, "vol")
	os.Symlink(target, vol)
	d := openT(t, vol)
	var a, b unix.Stat_t
	unix.Fstat(d.Fd(), &a)
	unix.Stat(target, &b)
	if a.Ino != b.Ino {
		t.Error("root's link did not lead to its target")
	}
}

func TestMakeAllAndCreateByDescriptor(t *testing.T) {
	testenv.RequireRoot(t)
	const uid, gid = 4321, 4322
	base := t.TempDir()
	o := &Owner{UID: uid, GID: gid}
	d, err := MakeAll(filepath.Join(base, "a", "b"), 0o700, o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for p, mode := range map[string]uint32{filepath.Join(base, "a"): 0o755, filepath.Join(base, "a", "b"): 0o700} {
		var st unix.Stat_t
		unix.Stat(p, &st)
		if st.Uid != uid || st.Gid != gid || st.Mode&0o777 != mode {
			t.Errorf("%s: %d:%d %o", p, st.Uid, st.Gid, st.Mode&0o777)
		}
	}
	if err := d.WriteFile("f", ".t-", []byte("x"), 0o600, o, true); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(base, "a", "b", "f"), &st)
	if st.Uid != uid || st.Gid != gid || st.Mode&0o777 != 0o600 {
		t.Errorf("written file: %d:%d %o", st.Uid, st.Gid, st.Mode&0o777)
	}
	// A hard-linked file is never given away.
	outside := filepath.Join(base, "outside")
	os.WriteFile(outside, nil, 0o600)
	os.Link(outside, filepath.Join(base, "a", "b", "hard"))
	f, _, err := d.OpenFile("hard", os.O_RDWR, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Chown(f, o); err == nil {
		t.Error("a file with two links was re-owned")
	}
	unix.Stat(outside, &st)
	if st.Uid != 0 {
		t.Errorf("outside file re-owned to %d", st.Uid)
	}
}
