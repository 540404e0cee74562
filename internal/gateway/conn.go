package gateway

import (
	"bufio"
	"context"
	"net"
	"time"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// A conn is one connection to Redis, used by one request at a time.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	// rd reads c's replies: c may be used again only when rd is Clean.
	rd *resp.Reader
	wb []byte

	// tag is the identity the connection last authenticated as, verified
	// at verified; the zero tag means "RESET before use".
	tag      tag
	verified time.Time
	// share is the identity whose share of the pool the connection
	// counts against while it is out of the pool (see shares).
	share tag
	// deadline is the connection's I/O deadline.
	deadline time.Time
	// gen is the pool's generation c was dialled in (see pool.moved).
	gen uint64
}

// setDeadline sets the connection's I/O deadline to d, for a round starting
// at now. Setting a deadline is not free (a runtime timer), so a deadline
// still more than timeout/2 away and not after d is kept: a request gets at
// least timeout/2 and at most until d, and is bounded either way.
func (c *conn) setDeadline(now, d time.Time, timeout time.Duration) {
	if c.deadline.Sub(now) > timeout/2 && !c.deadline.After(d) {
		return
	}
	c.deadline = d
	_ = c.nc.SetDeadline(d)
}

// deadlineOf returns ctx's deadline when it is before d, else d.
func deadlineOf(ctx context.Context, d time.Time) time.Time {
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// dial connects to addr. It takes timeout at most, and ends by deadline.
func dial(ctx context.Context, addr string, timeout time.Duration, deadline time.Time, l Limits) (*conn, error) {
	if d := time.Now().Add(timeout); d.Before(deadline) {
		deadline = d
	}
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 16<<10)
	return &conn{nc: nc, br: br, rd: resp.NewReader(br, l.resp()), wb: make([]byte, 0, 4<<10)}, nil
}

func (c *conn) close() { _ = c.nc.Close() }
