package boot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
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

// ErrUnknownUser is wrapped by Lookup when a name (user or group) is not
// in the account files; the launcher exits 125 on it.
var ErrUnknownUser = errors.New("unknown user")

// Accounts names the account databases. The zero value reads /etc/passwd and
// /etc/group; tests name other files.
type Accounts struct {
	Passwd string
	Group  string
}

// CheckUserSpec checks the form of spec, NAME|UID[:GROUP|GID], without
// looking anything up: the configuration refuses a malformed --user before
// the env directory is read, Lookup answers whether the user exists.
func CheckUserSpec(spec string) error {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || strings.ContainsAny(spec, " \t\r\n") || (hasGroup && group == "") {
		return errors.New("want NAME, UID, NAME:GROUP or UID:GID")
	}
	return nil
}

// Lookup resolves spec, "USER" or "USER:GROUP", each part a name or a number,
// with the parser gosu and runc use (moby/sys/user), so a spec means here
// what it means to them:
//   - "USER": the user's primary group, plus every group of /etc/group that
//     lists the user as a member;
//   - "USER:GROUP": that group and no other, the user's memberships dropped
//     (as gosu, su-exec and `docker run --user` do): naming a group asks for
//     exactly that group.
//
// A numeric uid with no passwd entry is allowed (an arbitrary uid is normal
// in containers): its group is the same number unless one is given (not 0,
// root's group, as gosu would keep), and its home is "/". A name that is not
// found is an error wrapping ErrUnknownUser. A missing account file counts as
// empty; one that cannot be read is an error.
func (a Accounts) Lookup(spec string) (*User, error) {
	if err := CheckUserSpec(spec); err != nil {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	userPart, _, _ := strings.Cut(spec, ":")
	passwd, err := readAccounts(a.Passwd, "/etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	group, err := readAccounts(a.Group, "/etc/group")
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	defaults := &user.ExecUser{Home: "/"}
	if id, err := strconv.Atoi(userPart); err == nil {
		defaults.Uid, defaults.Gid = id, id
	}
	eu, err := user.GetExecUser(spec, defaults, bytes.NewReader(passwd), bytes.NewReader(group))
	switch {
	case errors.Is(err, user.ErrNoPasswdEntries) || errors.Is(err, user.ErrNoGroupEntries):
		return nil, fmt.Errorf("user %q: %w: %w", spec, ErrUnknownUser, err)
	case err != nil:
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	u := &User{UID: eu.Uid, GID: eu.Gid, Home: eu.Home, Groups: append(eu.Sgids, eu.Gid)}
	if u.Home == "" {
		u.Home = "/"
	}
	if _, err := strconv.Atoi(userPart); err != nil {
		u.Name = userPart
	} else if ents, _ := user.ParsePasswdFilter(bytes.NewReader(passwd), func(p user.User) bool { return p.Uid == u.UID }); len(ents) > 0 {
		u.Name = ents[0].Name
	}
	slices.Sort(u.Groups)
	u.Groups = slices.Compact(u.Groups)
	return u, nil
}

// readAccounts reads path (def when empty); a file that does not exist is an
// empty database, as it is to gosu.
func readAccounts(path, def string) ([]byte, error) {
	if path == "" {
		path = def
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return data, err
}
