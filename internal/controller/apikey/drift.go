package apikey

import (
	"fmt"
	"slices"

	"github.com/ai-decenter/redishttp/internal/clients/redis"
)

// drift describes how the user differs from the rules, without revealing
// password digests. Command rules are compared in Redis's compacted form of
// them, cmds (see redis.ACL's Commands).
func drift(u *redis.User, r redis.Rules, cmds string) []string {
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
	if cmds != u.Commands {
		d = append(d, fmt.Sprintf("commands: want %q, got %q", cmds, u.Commands))
	}
	return d
}
