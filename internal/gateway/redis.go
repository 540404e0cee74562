package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// A Redis runs commands on one Redis server as the identities asked.
type Redis struct {
	pool    *pool
	mem     *memory
	batches batches
	limits  Limits
	timeout time.Duration
	secret  []byte
	now     func() time.Time
	// accepted is the identities Redis accepted lately (see Check).
	accepted accepted
}

// NewRedis returns a Redis for the server at addr with at most poolSize
// connections.
func NewRedis(addr string, poolSize int, dialTimeout, timeout time.Duration, l Limits, o ...RedisOption) *Redis {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	r := &Redis{pool: newPool(addr, poolSize, DefaultConnsPerToken(poolSize), dialTimeout, timeout, l), mem: newMemory(math.MaxInt64), limits: l, timeout: timeout, secret: secret, now: time.Now}
	for _, fn := range o {
		fn(r)
	}
	// A request reads at most what its identity's share of the memory
	// holds (see memory): a larger reply is too large (400), never a 503
	// that retrying cannot end.
	r.limits.MaxReplyBytes = min(r.limits.MaxReplyBytes, r.mem.maxRead())
	r.pool.limits = r.limits
	r.batches.rounds = r.pool.shares.max
	return r
}

// MaxReplyBytes is the most one request may read from Redis: the
// Limits' MaxReplyBytes, or a quarter of WithMaxMemory's bound if less.
func (r *Redis) MaxReplyBytes() int64 { return r.limits.MaxReplyBytes }

// Healthy reports whether the gateway can still serve requests, for
// /healthz: a pool all of whose connections are held for more than twice
// the request timeout (a round's I/O deadline bounds how long it holds
// one) is wedged, and only a restart ends it.
func (r *Redis) Healthy() error {
	if r.pool.wedged(r.now(), 2*r.timeout) {
		return ErrWedged
	}
	return nil
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
//
// The replies hold memory of the gateway's (see memory) until the Held
// returned is released, once they are written; an error holds none.
//
// A request of one command that Redis refused because its server is no
// master any more (see follow) runs once more, on a connection dialled
// after the refusal: after a failover it runs on the new master.
func (r *Redis) Do(ctx context.Context, id Identity, cmds [][][]byte, mode Mode) ([]resp.Value, Held, error) {
	cl := r.newCall(ctx, cmds)
	cl.id = id.tag
	r.run(ctx, id, cl, mode)
	if retryable(cl) {
		Held{m: r.mem, t: id.tag, n: cl.held}.Release()
		cl = &call{cmds: cl.cmds, size: cl.size, deadline: cl.deadline, id: cl.id, mem: r.mem}
		r.run(ctx, id, cl, mode)
	}
	held := Held{m: r.mem, t: id.tag, n: cl.held}
	if cl.err != nil {
		held.Release()
		return nil, Held{}, cl.err
	}
	return cl.replies, held, nil
}

// run runs cl as id, in a round of its own or batched by mode.
func (r *Redis) run(ctx context.Context, id Identity, cl *call, mode Mode) {
	if mode == ModeShared {
		r.batches.do(r, id, cl)
	} else {
		r.round(ctx, id, []*call{cl}, mode == ModeStateful)
	}
}

// A call is one request's commands and, once its round ran, their replies
// or its error.
type call struct {
	cmds [][][]byte
	// size is the bytes of cmds' arguments.
	size int
	// deadline is when the request times out.
	deadline time.Time
	replies  []resp.Value
	err      error
	// moved is set when a reply said the call's server is no master and
	// the pool dials anew (see follow): a call that provably did not run
	// may run once more (see retryable).
	moved bool
	// lead, when a call waited for a round (batch.go), receives true when
	// the call is to run its batch, false when its batch ran.
	lead  chan bool
	batch []*call
	// id is the identity whose memory the replies take from mem; held is
	// what they took, spare what of it they do not use yet (Reserve).
	id          tag
	mem         *memory
	held, spare int64
}

func (r *Redis) newCall(ctx context.Context, cmds [][][]byte) *call {
	cl := &call{cmds: cmds, deadline: deadlineOf(ctx, r.now().Add(r.timeout)), mem: r.mem}
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
	// The slot goes back on every path, a panic included (the
	// connection, then, is closed).
	reusable := false
	defer func() { r.pool.put(c, reusable) }()
	reusable = r.do(c, id, live, deadline)
	if stateful {
		c.tag = tag{}
	}
}

// do runs the calls of live on c as id, authenticating c first when it is
// not verified as id, then every call's commands in one write; each call's
// replies are read within its own Limits. It sets each call's replies or
// error, and reports whether c may be used again: only at a reply
// boundary with nothing unread. deadline bounds it: the earliest of the
// calls'.
func (r *Redis) do(c *conn, id Identity, live []*call, deadline time.Time) bool {
	start := r.now()
	c.setDeadline(start, deadline, r.timeout)
	if c.tag != id.tag || start.Sub(c.verified) >= VerifyTTL {
		if err := r.authenticate(c, id, start); err != nil {
			fail(live, err)
			if errors.Is(err, ErrUnauthorized) {
				return c.rd.Clean()
			}
			r.pool.moved(c, r.now())
			return false
		}
	}
	c.wb = c.wb[:0]
	for _, cl := range live {
		for _, cmd := range cl.cmds {
			c.wb = resp.AppendCommand(c.wb, cmd...)
		}
	}
	if _, err := c.nc.Write(c.wb); err != nil {
		fail(live, ioErr(err))
		r.pool.moved(c, r.now())
		return false
	}
	// Keep a big buffer from one request from staying with the connection.
	if cap(c.wb) > 64<<10 {
		c.wb = make([]byte, 0, 4<<10)
	}
	c.rd.Discard = maxSkipBytes
	defer func() { c.rd.Reserve = nil }()
	for i, cl := range live {
		c.rd.Start(r.limits.MaxReplyBytes)
		c.rd.Reserve = cl
		replies := make([]resp.Value, len(cl.cmds))
		for j := range replies {
			v, err := c.rd.Read()
			switch {
			case err == nil:
				replies[j] = v
			case !c.rd.Failed():
				// Too large, read and dropped whole: the call fails,
				// its other replies are read (and dropped) so that
				// the calls after it get theirs.
				cl.err = ErrReplyTooLarge
				if errors.Is(err, resp.ErrNoMemory) {
					cl.err = ErrBusy
				}
			default:
				cl.err = ioErr(err)
				// The calls after cl ran, or may have, but their replies
				// are lost with the connection.
				fail(live[i+1:], fmt.Errorf("%w: the connection failed on another request's reply", ErrUnavailable))
				if lost(err) {
					r.pool.moved(c, r.now())
				}
				return false
			}
		}
		if cl.err == nil {
			cl.replies = replies
		}
	}
	if !c.rd.Clean() {
		return false
	}
	return r.follow(c, live)
}

// fail sets err as the error of calls.
func fail(calls []*call, err error) {
	for _, cl := range calls {
		cl.err = err
	}
}

// authenticate makes c's connection id's (RESET, then AUTH) and waits for
// the verdict: commands are only ever sent behind an AUTH whose +OK was
// read (see doc.go). It returns ErrUnauthorized when Redis refused id's
// user and key; any other error leaves c unusable.
func (r *Redis) authenticate(c *conn, id Identity, now time.Time) error {
	c.tag = tag{}
	c.wb = resp.AppendCommand(c.wb[:0], cmdReset)
	c.wb = resp.AppendCommand(c.wb, cmdAuth, []byte(id.User), []byte(id.Key))
	if _, err := c.nc.Write(c.wb); err != nil {
		return ioErr(err)
	}
	c.rd.Start(authBudget)
	c.rd.Discard = 0
	reset, err := c.rd.Read()
	if err != nil {
		return ioErr(err)
	}
	if !isStatus(reset, "RESET") {
		return errUnexpectedReply
	}
	auth, err := c.rd.Read()
	switch {
	case err != nil:
		return ioErr(err)
	case isStatus(auth, "OK"):
		c.tag, c.verified = id.tag, now
		r.accepted.add(id.tag, now)
		return nil
	case auth.IsError():
		return ErrUnauthorized
	default:
		return errUnexpectedReply
	}
}

// isStatus reports whether v is the status reply s, exactly.
func isStatus(v resp.Value, s string) bool {
	return v.Kind == resp.KindStatus && string(v.Str) == s
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

// Ping checks that Redis answers, for /readyz. Any reply to PING counts,
// NOAUTH included: the server is up.
func (r *Redis) Ping(ctx context.Context) error {
	now := r.now()
	deadline := deadlineOf(ctx, now.Add(r.timeout))
	c, err := r.pool.get(ctx, tag{}, deadline)
	if err != nil {
		return err
	}
	reusable := false
	defer func() { r.pool.put(c, reusable) }()
	c.setDeadline(now, deadline, r.timeout)
	c.tag = tag{}
	c.wb = resp.AppendCommand(c.wb[:0], cmdReset)
	c.wb = resp.AppendCommand(c.wb, []byte("PING"))
	if _, err := c.nc.Write(c.wb); err != nil {
		return err
	}
	c.rd.Start(authBudget)
	c.rd.Discard = 0
	reset, err := c.rd.Read()
	if err != nil {
		return err
	}
	if !isStatus(reset, "RESET") {
		return errUnexpectedReply
	}
	if _, err := c.rd.Read(); err != nil {
		return err
	}
	reusable = c.rd.Clean()
	return nil
}

// Verify checks id's user and key with Redis now (RESET, AUTH and a PING
// on a pooled connection), for long-lived streams.
func (r *Redis) Verify(ctx context.Context, id Identity) error {
	cl := r.newCall(ctx, [][][]byte{{[]byte("PING")}})
	c, err := r.pool.get(ctx, tag{}, cl.deadline)
	if err != nil {
		return err
	}
	reusable := false
	defer func() { r.pool.put(c, reusable) }()
	c.tag = tag{}
	reusable = r.do(c, id, []*call{cl}, cl.deadline)
	return cl.err
}
