package redis

import (
	"net"

	"github.com/ai-decenter/redishttp/internal/resp"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Limits bound what the provider reads from a Redis. Any Redis is hostile
// input: a tenant's connectionSecretRef may name a server of their own, and
// one reply of `*10000000000000` would make the client allocate the whole
// array before reading an element. The guard checks each reply's headers
// before the client sees them.
type Limits struct {
	// MaxBulk is the largest bulk string, in bytes.
	MaxBulk int64
	// MaxElements is the largest array, in elements.
	MaxElements int64
	// MaxDepth is how deeply arrays may nest.
	MaxDepth int
	// MaxLine is the longest status or error line, in bytes.
	MaxLine int
	// MaxReply is the largest reply, all of it: its bytes plus
	// resp.ValueSize per array element (what a client holds once it read
	// it).
	MaxReply int64
}

// DefaultLimits fit what the provider reads (ACL LIST of tens of thousands of
// users, INFO, ACL GETUSER) with room to spare.
var DefaultLimits = Limits{
	MaxBulk:     4 << 20,
	MaxElements: 1 << 20,
	MaxDepth:    8,
	MaxLine:     64 << 10,
	MaxReply:    64 << 20,
}

// ErrReplyRefused is the error for a reply outside the Limits, or one that is
// not RESP2 at all. Its messages never quote the reply: the peer may not be
// Redis, and what it sent must not reach the tenant.
var ErrReplyRefused = errors.New("cannot read the Redis reply")

func refused(format string, a ...any) error {
	return errors.Wrapf(ErrReplyRefused, format, a...)
}

// A guard follows a stream of RESP2 replies incrementally and fails as soon
// as one exceeds its limits, before the bytes reach the client's parser. It
// is the repository's one RESP reader (internal/resp), checking without
// building values.
type guard struct {
	d        resp.Decoder
	maxReply int64
}

func newGuard(l Limits) *guard {
	return &guard{
		d: resp.Decoder{
			Limits:   resp.Limits{MaxBulk: l.MaxBulk, MaxArray: l.MaxElements, MaxDepth: l.MaxDepth, MaxLine: l.MaxLine},
			Budget:   l.MaxReply,
			NoValues: true,
		},
		maxReply: l.MaxReply,
	}
}

// feed checks the next bytes of the stream.
func (g *guard) feed(p []byte) error {
	for len(p) > 0 {
		n, done, err := g.d.Feed(p)
		if err != nil {
			// The reader's messages never quote the stream.
			return refused("%v", err)
		}
		p = p[n:]
		if done {
			g.d.Budget = g.maxReply
		}
	}
	return nil
}

// A guardedConn passes what it reads through a guard. Once a reply is
// refused, the connection is closed and every later read fails.
type guardedConn struct {
	net.Conn

	g   *guard
	err error
}

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if gerr := c.g.feed(p[:n]); gerr != nil {
			c.err = gerr
			_ = c.Close()
			return 0, gerr
		}
	}
	return n, err
}
