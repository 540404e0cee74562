package redis

import (
	"bytes"
	"net"
	"strconv"

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
	// MaxLine is the longest header, status, error or integer line, in bytes.
	MaxLine int
	// MaxReply is the largest reply, all of it, in bytes.
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
// as one exceeds its limits, before the bytes reach the client's parser.
type guard struct {
	l Limits

	line  []byte  // the header line read so far
	bulk  int64   // payload bytes (and CRLF) of a bulk string still to come
	open  []int64 // elements still to come in each open array, innermost last
	reply int64   // bytes of the current reply so far
}

// feed checks the next bytes of the stream.
func (g *guard) feed(p []byte) error {
	for len(p) > 0 {
		if g.bulk > 0 {
			n := min(int64(len(p)), g.bulk)
			g.bulk -= n
			p = p[n:]
			if err := g.count(n); err != nil {
				return err
			}
			if g.bulk == 0 {
				g.element()
			}
			continue
		}
		chunk := p
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			chunk = p[:i+1]
		}
		if len(g.line)+len(chunk) > g.l.MaxLine {
			return refused("a line of more than %d bytes", g.l.MaxLine)
		}
		g.line = append(g.line, chunk...)
		p = p[len(chunk):]
		if err := g.count(int64(len(chunk))); err != nil {
			return err
		}
		if i < 0 {
			continue
		}
		if err := g.header(g.line); err != nil {
			return err
		}
		g.line = g.line[:0]
	}
	return nil
}

func (g *guard) count(n int64) error {
	g.reply += n
	if g.reply > g.l.MaxReply {
		return refused("a reply of more than %d bytes", g.l.MaxReply)
	}
	return nil
}

// header checks one complete line, CRLF included.
func (g *guard) header(line []byte) error {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return refused("the peer does not speak the Redis protocol")
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+', '-', ':':
		g.element()
		return nil
	case '$':
		n, err := strconv.ParseInt(string(body), 10, 64)
		switch {
		case err != nil || n < -1:
			return refused("the peer does not speak the Redis protocol")
		case n == -1:
			g.element()
		case n > g.l.MaxBulk:
			return refused("a bulk string of more than %d bytes", g.l.MaxBulk)
		default:
			g.bulk = n + 2
		}
		return nil
	case '*':
		n, err := strconv.ParseInt(string(body), 10, 64)
		switch {
		case err != nil || n < -1:
			return refused("the peer does not speak the Redis protocol")
		case n > g.l.MaxElements:
			return refused("an array of more than %d elements", g.l.MaxElements)
		case n <= 0:
			g.element()
		case len(g.open) >= g.l.MaxDepth:
			return refused("arrays nested more than %d deep", g.l.MaxDepth)
		default:
			g.open = append(g.open, n)
		}
		return nil
	default:
		// RESP3 types included: the provider speaks RESP2 only.
		return refused("the peer does not speak the Redis protocol")
	}
}

// element records that one value ended, and with it every array it
// completes; when no array is open, the reply ended.
func (g *guard) element() {
	for len(g.open) > 0 {
		g.open[len(g.open)-1]--
		if g.open[len(g.open)-1] > 0 {
			return
		}
		g.open = g.open[:len(g.open)-1]
	}
	g.reply = 0
}

// A guardedConn passes what it reads through a guard. Once a reply is
// refused, the connection is closed and every later read fails.
type guardedConn struct {
	net.Conn

	g   guard
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
