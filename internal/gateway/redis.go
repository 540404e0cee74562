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
// write (a round: one request's commands, or a batch of concurrent
// requests of the same identity, see Redis.Do). RESET de-authenticates the connection (the default user has a
// password), so when AUTH fails every command after it is refused by Redis
// with NOAUTH: nothing runs, the gateway answers 401. RESET and AUTH are
// no-auth commands that no ACL rule can deny.
//
// A connection remembers the identity it authenticated as (an HMAC of user
// and key with a key random per process: the gateway keeps no key) and
// when. For VerifyTTL after that, a round of the same identity that finds
// it idle sends only its commands (a request that waited for a round is
// checked when its round starts). So a key removed from a user (the end of
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
	batches batches
	limits  Limits
	timeout time.Duration
	secret  []byte
	now     func() time.Time
}

// NewRedis returns a Redis for the server at addr with at most poolSize
// connections.
func NewRedis(addr string, poolSize int, dialTimeout, timeout time.Duration, l Limits, o ...RedisOption) *Redis {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	r := &Redis{pool: newPool(addr, poolSize, DefaultConnsPerToken(poolSize), dialTimeout, timeout), limits: l, timeout: timeout, secret: secret, now: time.Now}
	for _, fn := range o {
		fn(r)
	}
	r.batches.rounds = r.pool.shares.max
	return r
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

// A Mode says whether a request's commands may share a connection's write
// with other requests of the same identity.
type Mode int

// The modes, from the most to the least shareable: a request takes the
// highest of its commands'.
const (
	// ModeShared commands may be batched with other requests'.
	ModeShared Mode = iota
	// ModeAlone commands run alone: blocking commands (a batch would wait
	// for them) and /multi-exec.
	ModeAlone
	// ModeStateful commands run alone and may leave state on the
	// connection (MULTI, SELECT, WATCH...): it is RESET before its next
	// use.
	ModeStateful
)

// Do runs cmds in order as id and returns one reply per command. It returns
// ErrUnauthorized when id's user and key were refused (and nothing ran),
// ErrReplyTooLarge, ErrTimeout or an error wrapping ErrUnavailable.
//
// ModeShared requests of one identity that arrive while maxRounds rounds
// of that identity are in flight wait, and the next round runs up to
// maxBatch of them in one write (see batch.go); other requests, and every
// request while fewer rounds are in flight, run at once in a round of
// their own.
func (r *Redis) Do(ctx context.Context, id Identity, cmds [][][]byte, mode Mode) ([]Value, error) {
	cl := r.newCall(ctx, cmds)
	if mode == ModeShared {
		r.batches.do(r, id, cl)
	} else {
		r.round(ctx, id, []*call{cl}, mode == ModeStateful)
	}
	return cl.replies, cl.err
}

// A call is one request's commands and, once its round ran, their replies
// or its error.
type call struct {
	cmds [][][]byte
	// size is the bytes of cmds' arguments.
	size int
	// deadline is when the request times out.
	deadline time.Time
	replies  []Value
	err      error
	// lead, when a call waited for a round (batch.go), receives true when
	// the call is to run its batch, false when its batch ran.
	lead  chan bool
	batch []*call
}

func (r *Redis) newCall(ctx context.Context, cmds [][][]byte) *call {
	cl := &call{cmds: cmds, deadline: deadlineOf(ctx, r.now().Add(r.timeout))}
	for _, c := range cmds {
		for _, a := range c {
			cl.size += len(a)
		}
	}
	return cl
}

// round runs the calls of batch on one pooled connection, in one write. A
// call already past its deadline (it waited for a round) does not run.
func (r *Redis) round(ctx context.Context, id Identity, batch []*call, stateful bool) {
	now := r.now()
	live := batch[:0:0]
	for _, cl := range batch {
		if cl.deadline.After(now) {
			live = append(live, cl)
		} else {
			cl.err = ErrTimeout
		}
	}
	if len(live) == 0 {
		return
	}
	deadline := earliest(live)
	c, err := r.pool.get(ctx, id.tag, deadline)
	if err != nil {
		switch {
		case errors.Is(err, ErrTooBusy):
		case !r.now().Before(deadline):
			err = ErrTimeout
		case !errors.Is(err, ErrPoolTimeout):
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		for _, cl := range live {
			cl.err = err
		}
		return
	}
	reusable := r.do(c, id, live, deadline)
	if stateful {
		c.tag = tag{}
	}
	r.pool.put(c, reusable)
}

// do runs the calls of live on c as id: RESET and AUTH first when c is not verified as
// id, then every call's commands, in one write; each call's replies are
// read within its own Limits. It sets each call's replies or error, and
// reports whether c is still usable. deadline bounds it: the earliest of
// the calls'.
func (r *Redis) do(c *conn, id Identity, live []*call, deadline time.Time) bool {
	start := r.now()
	fail := func(calls []*call, err error) {
		for _, cl := range calls {
			cl.err = err
		}
	}
	c.setDeadline(start, deadline, r.timeout)
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
				fail(live, firstErr(err, ErrUnauthorized))
				return err == nil
			}
			c.wb = c.wb[:0]
		}
	}
	for _, cl := range live {
		for _, cmd := range cl.cmds {
			c.wb = appendCommand(c.wb, cmd...)
		}
	}
	if _, err := c.nc.Write(c.wb); err != nil {
		fail(live, ioErr(err))
		return false
	}
	// Keep a big buffer from one request from staying with the connection.
	if cap(c.wb) > 64<<10 {
		c.wb = make([]byte, 0, 4<<10)
	}
	authOK := true
	if auth && !c.openDefault {
		ok, err := r.authReplies(c, &rr)
		if err != nil {
			fail(live, err)
			return false
		}
		authOK = ok
	}
calls:
	for i, cl := range live {
		rr.budget, rr.arena = r.limits.MaxReplyBytes, nil
		replies := make([]Value, len(cl.cmds))
		for j := range replies {
			v, err := rr.read(0)
			if t, ok := errors.AsType[*tooLargeError](err); ok {
				// Too large for this call: discard the rest of its
				// replies, so that the connection, and the calls after
				// it, carry on; but not a string above maxSkipBytes
				// (closing costs less than reading it).
				t.elems += int64(len(replies) - j - 1)
				if t.bytes > maxSkipBytes || rr.skip(t) != nil {
					cl.err = ErrReplyTooLarge
					fail(live[i+1:], fmt.Errorf("%w: the connection failed on another request's reply", ErrUnavailable))
					return false
				}
				cl.err = ErrReplyTooLarge
				continue calls
			}
			if err != nil {
				if !authOK {
					// Nothing ran: the replies read are NOAUTH.
					fail(live[:i], ErrUnauthorized)
				}
				cl.err = ioErr(err)
				// The calls after cl ran, or may have, but their replies
				// are lost with the connection.
				fail(live[i+1:], fmt.Errorf("%w: the connection failed on another request's reply", ErrUnavailable))
				return false
			}
			replies[j] = v
		}
		cl.replies = replies
	}
	if !authOK {
		for _, cl := range live {
			for _, v := range cl.replies {
				if !v.IsError() || !bytes.HasPrefix(v.Str, []byte("NOAUTH")) {
					// The default user lost its password since this
					// connection was dialled: never pipeline on it again.
					c.openDefault = true
				}
			}
			cl.replies, cl.err = nil, ErrUnauthorized
		}
		return true
	}
	if auth {
		c.tag, c.verified = id.tag, start
	}
	return true
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

// earliest returns the earliest deadline of calls.
func earliest(calls []*call) time.Time {
	d := calls[0].deadline
	for _, cl := range calls[1:] {
		if cl.deadline.Before(d) {
			d = cl.deadline
		}
	}
	return d
}

// Ping checks that Redis answers, for /readyz. Any reply counts, NOAUTH
// included: the server is up.
func (r *Redis) Ping(ctx context.Context) error {
	now := r.now()
	deadline := deadlineOf(ctx, now.Add(r.timeout))
	c, err := r.pool.get(ctx, tag{}, deadline)
	if err != nil {
		return err
	}
	c.setDeadline(now, deadline, r.timeout)
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
	cl := r.newCall(ctx, [][][]byte{{[]byte("PING")}})
	c, err := r.pool.get(ctx, tag{}, cl.deadline)
	if err != nil {
		return err
	}
	c.tag = tag{}
	r.pool.put(c, r.do(c, id, []*call{cl}, cl.deadline))
	return cl.err
}
