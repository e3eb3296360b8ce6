package boot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testAccounts(t *testing.T) Accounts {
	dir := t.TempDir()
	passwd := `root:x:0:0:root:/root:/bin/bash
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
agent:x:1000:1000:Agent,,,:/home/agent:/bin/bash
broken:x:notanumber:1:b:/b:/bin/sh
nohome:x:1001:1001:::/bin/sh
`
	group := `root:x:0:
docker:x:999:agent,other
agent:x:1000:
audio:x:29:agent
video:x:44: agent
nogroup:x:65534:
`
	// video lists " agent" with a space: not a member, as to gosu (group(5)
	// has no blanks in the member list).
	a := Accounts{Passwd: filepath.Join(dir, "passwd"), Group: filepath.Join(dir, "group")}
	if err := os.WriteFile(a.Passwd, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.Group, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLookupUser(t *testing.T) {
	a := testAccounts(t)
	cases := []struct {
		spec string
		want User
	}{
		{"agent", User{Name: "agent", UID: 1000, GID: 1000, Groups: []int{29, 999, 1000}, Home: "/home/agent"}},
		{"1000", User{Name: "agent", UID: 1000, GID: 1000, Groups: []int{29, 999, 1000}, Home: "/home/agent"}},
		// An explicit group is the only group, as with gosu, su-exec and
		// docker run --user: agent's memberships (audio, docker) are dropped.
		{"agent:docker", User{Name: "agent", UID: 1000, GID: 999, Groups: []int{999}, Home: "/home/agent"}},
		{"agent:4242", User{Name: "agent", UID: 1000, GID: 4242, Groups: []int{4242}, Home: "/home/agent"}},
		{"1000:audio", User{Name: "agent", UID: 1000, GID: 29, Groups: []int{29}, Home: "/home/agent"}},
		{"nobody", User{Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}, Home: "/nonexistent"}},
		{"5000", User{UID: 5000, GID: 5000, Groups: []int{5000}, Home: "/"}},
		{"5000:7", User{UID: 5000, GID: 7, Groups: []int{7}, Home: "/"}},
		{"nohome", User{Name: "nohome", UID: 1001, GID: 1001, Groups: []int{1001}, Home: "/"}},
	}
	for _, c := range cases {
		u, err := a.Lookup(c.spec)
		if err != nil {
			t.Errorf("Lookup(%q): %v", c.spec, err)
			continue
		}
		if !reflect.DeepEqual(*u, c.want) {
			t.Errorf("Lookup(%q) = %+v, want %+v", c.spec, *u, c.want)
		}
	}
}

func TestLookupUserErrors(t *testing.T) {
	a := testAccounts(t)
	for _, spec := range []string{"ghost", "agent:ghosts", "", ":1", "agent:", "99999999999", "agent :x", " agent"} {
		_, err := a.Lookup(spec)
		if err == nil {
			t.Errorf("Lookup(%q) succeeded, want an error", spec)
			continue
		}
		if !strings.Contains(err.Error(), spec) {
			t.Errorf("Lookup(%q) error %q does not name the spec", spec, err)
		}
	}
	for _, spec := range []string{"ghost", "agent:ghosts"} {
		if _, err := a.Lookup(spec); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("Lookup(%q) = %v, want ErrUnknownUser", spec, err)
		}
	}
	missing := Accounts{Passwd: filepath.Join(t.TempDir(), "none"), Group: filepath.Join(t.TempDir(), "none")}
	if _, err := missing.Lookup("agent"); err == nil {
		t.Error("Lookup by name without a passwd file succeeded")
	}
	if u, err := missing.Lookup("1234"); err != nil || u.UID != 1234 {
		t.Errorf("Lookup by number without a passwd file: %v %v", u, err)
	}
}

func TestLookupUserSystem(t *testing.T) {
	u, err := Accounts{}.Lookup("0")
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != 0 || u.Name != "root" {
		t.Errorf("uid 0 = %+v", u)
	}
}
