package gateway

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"time"
)

// A conn is one connection to Redis, used by one request at a time.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	wb []byte

	// tag is the identity the connection last authenticated as, verified
	// at verified; the zero tag means "RESET before use".
	tag      tag
	verified time.Time
	// share is the identity whose share of the pool the connection
	// counts against while it is out of the pool (see shares).
	share tag
	// openDefault is true when Redis's default user needs no password: a
	// RESET then leaves the connection authenticated as default, so a
	// failed AUTH would not stop the commands pipelined after it. On such
	// a server AUTH's reply is awaited before commands are sent.
	openDefault bool
	// deadline is the connection's I/O deadline.
	deadline time.Time
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

// dial connects to addr and learns whether the default user is open: an
// unauthenticated PING answers NOAUTH when it is not. It takes timeout at
// most, and ends by deadline.
func dial(ctx context.Context, addr string, timeout time.Duration, deadline time.Time) (*conn, error) {
	if d := time.Now().Add(timeout); d.Before(deadline) {
		deadline = d
	}
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), wb: make([]byte, 0, 4<<10)}
	c.deadline = deadline
	_ = nc.SetDeadline(c.deadline)
	c.wb = appendCommand(c.wb[:0], []byte("PING"))
	if _, err := nc.Write(c.wb); err != nil {
		_ = nc.Close()
		return nil, err
	}
	rr := replyReader{r: c.br, limits: DefaultLimits, budget: 1 << 16}
	v, err := rr.read(0)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.openDefault = v.Kind != KindError || !bytes.HasPrefix(v.Str, []byte("NOAUTH"))
	return c, nil
}

func (c *conn) close() { _ = c.nc.Close() }
