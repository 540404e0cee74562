package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
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

// acceptedTTL is how long an identity Redis accepted (AUTH +OK) counts as
// accepted for reading its request bodies (see Redis.Check): bodies are
// charged to their identity's share of the memory before Redis runs
// anything, and a forged token must not take a share.
const acceptedTTL = time.Minute

// accepted remembers the identities Redis accepted within acceptedTTL.
// Only accepted identities enter it, so its size is bounded by the
// tenant's ACL users and keys, not by what clients send.
type accepted struct {
	mu    sync.Mutex
	at    map[tag]time.Time
	swept time.Time
}

// add records that Redis accepted t at now, and forgets the identities it
// did not accept again for acceptedTTL, at most once per acceptedTTL.
func (a *accepted) add(t tag, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = make(map[tag]time.Time)
	}
	a.at[t] = now
	if now.Sub(a.swept) < acceptedTTL {
		return
	}
	a.swept = now
	for k, at := range a.at {
		if now.Sub(at) >= acceptedTTL {
			delete(a.at, k)
		}
	}
}

// has reports whether Redis accepted t within acceptedTTL of now.
func (a *accepted) has(t tag, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[t]
	return ok && now.Sub(at) < acceptedTTL
}

var cmdPing = []byte("PING")

// Check returns nil when Redis accepted id's user and key within
// acceptedTTL, or accepts them now (a PING run as id, batched with id's
// requests); ErrUnauthorized when Redis refuses them, or Do's other
// errors.
func (r *Redis) Check(ctx context.Context, id Identity) error {
	if r.accepted.has(id.tag, r.now()) {
		return nil
	}
	_, held, err := r.Do(ctx, id, [][][]byte{{cmdPing}}, ModeShared)
	held.Release()
	return err
}
