package redis

import (
	"slices"
	"strings"
)

// A User is a Redis ACL user as Redis reports it in ACL LIST.
type User struct {
	// Name of the user.
	Name string
	// Enabled is true when the user is "on".
	Enabled bool
	// NoPass is true when the user accepts any password.
	NoPass bool
	// PasswordHashes are the SHA-256 hex digests of the user's passwords,
	// sorted.
	PasswordHashes []string
	// KeyPatterns are the user's key patterns without their ~ prefix, sorted.
	KeyPatterns []string
	// Channels are the user's Pub/Sub channel patterns without their &
	// prefix, sorted.
	Channels []string
	// Commands are the user's command rules in Redis's own (compacted) form,
	// for example "-@all +@read -keys -sort_ro".
	Commands string
}

// Rules are what ACL SETUSER is asked to make a user: exactly these, nothing
// inherited from an earlier state of the user.
type Rules struct {
	// PasswordHashes are SHA-256 hex digests of the accepted passwords. The
	// plaintext never reaches Redis through this package.
	PasswordHashes []string
	// KeyPatterns without their ~ prefix.
	KeyPatterns []string
	// Channels without their & prefix.
	Channels []string
	// Commands are command rules such as "+@all" or "-flushall", applied in
	// order after -@all.
	Commands []string
}

// CommandRules returns the command rules as one string, the key under which
// Redis's compacted form of them is remembered.
func (r Rules) CommandRules() string { return strings.Join(r.Commands, " ") }

// Args returns the arguments of ACL SETUSER for user name. reset clears every
// earlier password, pattern, channel, flag and command rule, so the user ends
// up with exactly r.
func (r Rules) Args(name string) []any {
	args := make([]any, 0, 6+len(r.PasswordHashes)+len(r.KeyPatterns)+len(r.Channels)+len(r.Commands))
	args = append(args, "ACL", "SETUSER", name, "reset", "on")
	for _, h := range r.PasswordHashes {
		args = append(args, "#"+h)
	}
	for _, p := range r.KeyPatterns {
		args = append(args, "~"+p)
	}
	args = append(args, "resetchannels")
	for _, c := range r.Channels {
		args = append(args, "&"+c)
	}
	args = append(args, "-@all")
	for _, c := range r.Commands {
		args = append(args, c)
	}
	return args
}

// User returns the user r makes, with commands in Redis's form.
func (r Rules) User(name, commands string) *User {
	return &User{
		Name:           name,
		Enabled:        true,
		PasswordHashes: sorted(r.PasswordHashes),
		KeyPatterns:    sorted(r.KeyPatterns),
		Channels:       sorted(r.Channels),
		Commands:       commands,
	}
}

// ParseUser parses one line of ACL LIST, for example
// "user app on sanitize-payload #1b2c... ~app:* resetchannels -@all +@read".
// It returns false when the line does not describe a user.
func ParseUser(line string) (*User, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "user" {
		return nil, false
	}
	u := &User{Name: f[1]}
	var cmds []string
	for i := 2; i < len(f); i++ {
		t := f[i]
		switch {
		case t == "on":
			u.Enabled = true
		case t == "off":
			u.Enabled = false
		case t == "nopass":
			u.NoPass = true
		case t == "allkeys":
			u.KeyPatterns = append(u.KeyPatterns, "*")
		case t == "allchannels":
			u.Channels = append(u.Channels, "*")
		case t == "resetchannels":
		case strings.HasPrefix(t, "#"):
			u.PasswordHashes = append(u.PasswordHashes, t[1:])
		case strings.HasPrefix(t, "~"):
			u.KeyPatterns = append(u.KeyPatterns, t[1:])
		case strings.HasPrefix(t, "&"):
			u.Channels = append(u.Channels, t[1:])
		case strings.HasPrefix(t, "+"), strings.HasPrefix(t, "-"):
			cmds = append(cmds, t)
		case strings.HasPrefix(t, "%"), strings.HasPrefix(t, "("):
			// Read/write key permissions and selectors are never set by this
			// provider; keep them visible as command rules so they count as
			// drift.
			cmds = append(cmds, t)
		}
	}
	u.PasswordHashes = sorted(u.PasswordHashes)
	u.KeyPatterns = sorted(u.KeyPatterns)
	u.Channels = sorted(u.Channels)
	u.Commands = NormalizeCommands(strings.Join(cmds, " "))
	return u, true
}

// NormalizeCommands returns command rules in Redis's compacted form with the
// single-command rules sorted. Redis lists category rules in a stable order
// but the commands it adds or removes on top of them in hash table order,
// which differs between processes ("-keys -sort_ro" or "-sort_ro -keys").
func NormalizeCommands(c string) string {
	var cats, cmds []string
	for t := range strings.FieldsSeq(c) {
		if strings.HasPrefix(t, "+@") || strings.HasPrefix(t, "-@") {
			cats = append(cats, t)
			continue
		}
		cmds = append(cmds, t)
	}
	slices.Sort(cmds)
	return strings.Join(append(cats, cmds...), " ")
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
