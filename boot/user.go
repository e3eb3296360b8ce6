package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// User is the account the CLI runs as.
type User struct {
	Name   string // empty for a numeric uid that has no passwd entry
	UID    int
	GID    int
	Groups []int // supplementary groups, the primary GID included
	Home   string
}

// String names the user for logs and errors: "agent (1000:1000)".
func (u *User) String() string {
	if u == nil {
		return "<current>"
	}
	name := u.Name
	if name == "" {
		name = strconv.Itoa(u.UID)
	}
	return fmt.Sprintf("%s (%d:%d)", name, u.UID, u.GID)
}

// ErrUnknownUser is wrapped by LookupUser when a name (user or group) is not
// in the account files; the launcher exits 125 on it.
var ErrUnknownUser = errors.New("unknown user")

// Accounts names the account databases. The zero value reads /etc/passwd and
// /etc/group. They are parsed here rather than through os/user (whose pure-Go
// build reads the same files) so that a spec is resolved as gosu resolves it
// (a numeric uid without an entry is allowed, USER:GROUP), and so that tests
// can name other files.
type Accounts struct {
	Passwd string
	Group  string
}

func (a Accounts) passwd() string {
	if a.Passwd == "" {
		return "/etc/passwd"
	}
	return a.Passwd
}

func (a Accounts) group() string {
	if a.Group == "" {
		return "/etc/group"
	}
	return a.Group
}

// LookupUser resolves spec from /etc/passwd and /etc/group.
func LookupUser(spec string) (*User, error) { return Accounts{}.Lookup(spec) }

// Lookup resolves spec, "USER" or "USER:GROUP", where each part is a name or a
// number, as gosu does. A numeric uid with no passwd entry is allowed (an
// arbitrary uid is normal in containers): its group is the same number unless
// one is given, and its home is "/". A name that is not found is an error
// wrapping ErrUnknownUser.
func (a Accounts) Lookup(spec string) (*User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return nil, fmt.Errorf("user %q: expected NAME|UID[:GROUP|GID]", spec)
	}
	pw, err := readColonFile(a.passwd(), 7)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && isNumber(userPart)) {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	var u *User
	for _, f := range pw {
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		if f[0] == userPart || (isNumber(userPart) && f[2] == userPart) {
			u = &User{Name: f[0], UID: uid, GID: gid, Home: f[5]}
			break
		}
	}
	if u == nil {
		if !isNumber(userPart) {
			return nil, fmt.Errorf("user %q: %w: no %s in %s", spec, ErrUnknownUser, userPart, a.passwd())
		}
		uid, err := parseID(userPart)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", spec, err)
		}
		u = &User{UID: uid, GID: uid, Home: "/"}
	}
	if u.Home == "" {
		u.Home = "/"
	}

	gr, err := readColonFile(a.group(), 4)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	if hasGroup {
		gid := -1
		for _, f := range gr {
			if f[0] == groupPart || (isNumber(groupPart) && f[2] == groupPart) {
				if g, err := strconv.Atoi(f[2]); err == nil {
					gid = g
					break
				}
			}
		}
		if gid < 0 {
			if !isNumber(groupPart) {
				return nil, fmt.Errorf("user %q: %w: no group %s in %s", spec, ErrUnknownUser, groupPart, a.group())
			}
			if gid, err = parseID(groupPart); err != nil {
				return nil, fmt.Errorf("user %q: %w", spec, err)
			}
		}
		u.GID = gid
	}

	groups := map[int]bool{u.GID: true}
	if u.Name != "" {
		for _, f := range gr {
			for _, m := range strings.Split(f[3], ",") {
				if strings.TrimSpace(m) == u.Name {
					if g, err := strconv.Atoi(f[2]); err == nil {
						groups[g] = true
					}
				}
			}
		}
	}
	for g := range groups {
		u.Groups = append(u.Groups, g)
	}
	sort.Ints(u.Groups)
	return u, nil
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%q is not a valid id", s)
	}
	return int(n), nil
}

// readColonFile returns the lines of a passwd-style file with at least n
// fields, skipping comments and NIS "+"/"-" entries.
func readColonFile(path string, n int) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < n {
			continue
		}
		out = append(out, fields)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}
