package gateway

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// VerifyTTL bounds how long a connection's verified identity is trusted
// (see doc.go): for VerifyTTL after its AUTH, a connection runs its
// identity's commands without authenticating again, so a key removed from a
// user, or a deleted user, is refused at most VerifyTTL later.
const VerifyTTL = 500 * time.Millisecond

// A tag is an identity's keyed hash (see Redis.Identity): what a
// connection remembers of the identity it authenticated as.
type tag [sha256.Size]byte

// An Identity is the ACL user a request runs as.
type Identity struct {
	User string
	Key  string
	tag  tag
}

// Identity returns the identity of user and key. Its tag is SHA-256 of a
// per-process random secret, the user's length, the user and the key: a
// keyed hash that is only ever compared in memory (never shown, so length
// extension does not matter), computed without allocating, unlike
// crypto/hmac, on every request's hot path.
func (r *Redis) Identity(user, key string) Identity {
	var stack [256]byte
	b := append(stack[:0], r.secret...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(user)))
	b = append(b, user...)
	b = append(b, key...)
	return Identity{User: user, Key: key, tag: sha256.Sum256(b)}
}
