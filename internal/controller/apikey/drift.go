package apikey

import (
	"fmt"
	"slices"

	"github.com/ai-decenter/redishttp/internal/clients/redis"
)

// drift describes how the user differs from the rules, without revealing
// password digests. Command rules are compared in Redis's compacted form,
// known once the provider applied the same rules to this Redis; until then
// they count as drift, and the next Update learns the form.
func drift(u *redis.User, r redis.Rules, acl redis.ACL) []string {
	want := r.User(u.Name, "")
	var d []string
	if !u.Enabled || u.NoPass {
		d = append(d, "user is off or accepts any password")
	}
	if !slices.Equal(u.PasswordHashes, want.PasswordHashes) {
		d = append(d, fmt.Sprintf("passwords: want %d, got %d (or different ones)", len(want.PasswordHashes), len(u.PasswordHashes)))
	}
	if !slices.Equal(u.KeyPatterns, want.KeyPatterns) {
		d = append(d, fmt.Sprintf("key patterns: want %q, got %q", want.KeyPatterns, u.KeyPatterns))
	}
	if !slices.Equal(u.Channels, want.Channels) {
		d = append(d, fmt.Sprintf("channels: want %q, got %q", want.Channels, u.Channels))
	}
	cmds, known := acl.Commands(r)
	switch {
	case !known:
		d = append(d, fmt.Sprintf("commands: %q not yet applied to this Redis", r.CommandRules()))
	case cmds != u.Commands:
		d = append(d, fmt.Sprintf("commands: want %q, got %q", cmds, u.Commands))
	}
	return d
}
