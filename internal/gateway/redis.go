package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// VerifyTTL bounds how long a connection's verified identity is trusted.
//
// How a request runs as its token's ACL user, without an extra round trip
// on the hot path:
//
// A connection that is not known to be authenticated as the request's
// identity gets RESET, AUTH <user> <key> and the request's commands in ONE
// write. RESET de-authenticates the connection (the default user has a
// password), so when AUTH fails every command after it is refused by Redis
// with NOAUTH: nothing runs, the gateway answers 401. RESET and AUTH are
// no-auth commands that no ACL rule can deny.
//
// A connection remembers the identity it authenticated as (an HMAC of user
// and key with a key random per process: the gateway keeps no key) and
// when. For VerifyTTL after that, a request of the same identity that finds
// it idle sends only its commands. So a key removed from a user (the end of
// a rotation's grace period) or a deleted user is refused at most VerifyTTL
// (500 ms) after the change, whatever the pool holds, even though Redis
// keeps connections authenticated with a removed password; ACL DELUSER
// closes them outright, and the pool drops closed connections before use.
// Permission changes (key patterns, commands) apply at once either way:
// Redis checks them on every command.
//
// When the default user has no password, RESET authenticates as default,
// and a failed AUTH would let the commands run as default; on such a
// server (learned per connection at dial) AUTH's reply is awaited before
// the commands are sent, at the cost of a round trip.
const VerifyTTL = 500 * time.Millisecond

// ErrUnauthorized is returned when Redis refused the token's user and key.
var ErrUnauthorized = errors.New("unauthorized")

// ErrUnavailable wraps failures to reach Redis.
var ErrUnavailable = errors.New("redis unavailable")

// ErrTimeout is returned when Redis did not answer within the request's
// deadline.
var ErrTimeout = errors.New("redis did not answer in time")

type tag [sha256.Size]byte

// An Identity is the ACL user a request runs as.
type Identity struct {
	User string
	Key  string
	tag  tag
}

// A Redis runs commands on one Redis server as the identities asked.
type Redis struct {
	pool    *pool
	limits  Limits
	timeout time.Duration
	secret  []byte
	now     func() time.Time
}

// NewRedis returns a Redis for the server at addr with at most poolSize
// connections.
func NewRedis(addr string, poolSize int, dialTimeout, timeout time.Duration, l Limits) *Redis {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &Redis{pool: newPool(addr, poolSize, dialTimeout, timeout), limits: l, timeout: timeout, secret: secret, now: time.Now}
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

// Close closes the idle connections.
func (r *Redis) Close() { r.pool.drain() }

var (
	cmdReset = []byte("RESET")
	cmdAuth  = []byte("AUTH")
)

// Do runs cmds in order as id and returns one reply per command. It returns
// ErrUnauthorized when id's user and key were refused (and nothing ran),
// ErrReplyTooLarge, ErrTimeout or an error wrapping ErrUnavailable.
// stateful says a command may leave state on the connection (MULTI, SELECT,
// WATCH...): the connection is then RESET before its next use.
func (r *Redis) Do(ctx context.Context, id Identity, cmds [][][]byte, stateful bool) ([]Value, error) {
	c, err := r.pool.get(ctx, id.tag)
	if err != nil {
		if errors.Is(err, ErrPoolTimeout) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	replies, reusable, err := r.do(ctx, c, id, cmds)
	if stateful {
		c.tag = tag{}
	}
	r.pool.put(c, reusable)
	return replies, err
}

func (r *Redis) do(ctx context.Context, c *conn, id Identity, cmds [][][]byte) ([]Value, bool, error) {
	start := r.now()
	c.setDeadline(ctx, start, r.timeout)
	rr := replyReader{r: c.br, limits: r.limits, budget: r.limits.MaxReplyBytes}

	auth := c.tag != id.tag || start.Sub(c.verified) >= VerifyTTL
	c.wb = c.wb[:0]
	if auth {
		c.tag = tag{}
		c.wb = appendCommand(c.wb, cmdReset)
		c.wb = appendCommand(c.wb, cmdAuth, []byte(id.User), []byte(id.Key))
		if c.openDefault {
			// Wait for AUTH's verdict: see VerifyTTL.
			ok, err := r.authReplies(c, &rr)
			if err != nil || !ok {
				return nil, err == nil, firstErr(err, ErrUnauthorized)
			}
			c.wb = c.wb[:0]
		}
	}
	for _, cmd := range cmds {
		c.wb = appendCommand(c.wb, cmd...)
	}
	if _, err := c.nc.Write(c.wb); err != nil {
		return nil, false, ioErr(err)
	}
	// Keep a big buffer from one request from staying with the connection.
	if cap(c.wb) > 64<<10 {
		c.wb = make([]byte, 0, 4<<10)
	}
	authOK := true
	if auth && !c.openDefault {
		ok, err := r.authReplies(c, &rr)
		if err != nil {
			return nil, false, err
		}
		authOK = ok
	}
	replies := make([]Value, len(cmds))
	for i := range replies {
		v, err := rr.read(0)
		if err != nil {
			return nil, false, ioErr(err)
		}
		replies[i] = v
	}
	if !authOK {
		for _, v := range replies {
			if !v.IsError() || !bytes.HasPrefix(v.Str, []byte("NOAUTH")) {
				// The default user lost its password since this
				// connection was dialled: never pipeline on it again.
				c.openDefault = true
			}
		}
		return nil, true, ErrUnauthorized
	}
	if auth {
		c.tag, c.verified = id.tag, start
	}
	return replies, true, nil
}

// authReplies reads the replies to RESET and AUTH: ok is false when AUTH
// was refused.
func (r *Redis) authReplies(c *conn, rr *replyReader) (bool, error) {
	if c.openDefault {
		if _, err := c.nc.Write(c.wb); err != nil {
			return false, ioErr(err)
		}
	}
	reset, err := rr.read(0)
	if err != nil {
		return false, ioErr(err)
	}
	if reset.Kind != KindStatus {
		return false, fmt.Errorf("%w: RESET answered %q", ErrUnavailable, reset.Str)
	}
	a, err := rr.read(0)
	if err != nil {
		return false, ioErr(err)
	}
	return a.Kind == KindStatus, nil
}

// Ping checks that Redis answers, for /readyz. Any reply counts, NOAUTH
// included: the server is up.
func (r *Redis) Ping(ctx context.Context) error {
	c, err := r.pool.get(ctx, tag{})
	if err != nil {
		return err
	}
	c.setDeadline(ctx, r.now(), r.timeout)
	c.tag = tag{}
	c.wb = appendCommand(c.wb[:0], cmdReset)
	c.wb = appendCommand(c.wb, []byte("PING"))
	if _, err := c.nc.Write(c.wb); err != nil {
		r.pool.put(c, false)
		return err
	}
	rr := replyReader{r: c.br, limits: r.limits, budget: 1 << 16}
	for range 2 {
		if _, err := rr.read(0); err != nil {
			r.pool.put(c, false)
			return err
		}
	}
	r.pool.put(c, true)
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func ioErr(err error) error {
	if errors.Is(err, ErrReplyTooLarge) || errors.Is(err, ErrUnavailable) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Verify checks id's user and key with Redis now (RESET, AUTH and a PING
// on a pooled connection), for long-lived streams.
func (r *Redis) Verify(ctx context.Context, id Identity) error {
	c, err := r.pool.get(ctx, tag{})
	if err != nil {
		return err
	}
	c.tag = tag{}
	_, reusable, err := r.do(ctx, c, id, [][][]byte{{[]byte("PING")}})
	r.pool.put(c, reusable)
	return err
}
