package gateway

import (
	"fmt"
	"math"
	"net"
	"sync/atomic"
)

// Bounds of the connections the REST API keeps open.
const (
	// unlimitedMaxConnections bounds the connections of a process without
	// a memory limit.
	unlimitedMaxConnections = 4096
	// connectionMemory is what one open connection is taken to hold: an
	// idle keep-alive connection after a 401 measured 23 KiB, one stalled
	// in its header 19 KiB, one stalled in the first 8 KiB of a body 27
	// KiB.
	connectionMemory = 32 << 10
	// minConnections is the least the default allows however little
	// memory is left outside WithMaxMemory's.
	minConnections = 64
)

// DefaultMaxConnections is the bound of Config.MaxConnections for a process
// whose memory limit (GOMEMLIMIT) is limit and whose bodies and replies in
// flight may hold maxMemory (see WithMaxMemory): the memory left outside
// maxMemory at 32 KiB a connection, at least 64; 4096 without a limit.
func DefaultMaxConnections(limit, maxMemory int64) int {
	if limit <= 0 || limit == math.MaxInt64 {
		return unlimitedMaxConnections
	}
	return int(max((limit-maxMemory)/connectionMemory, minConnections))
}

// A connLimit counts the open connections of an HTTPServer: each holds
// buffers whatever it sends (no token needed), and without a bound a few
// thousand idle or stalled connections from one machine took the
// process's memory.
type connLimit struct {
	max int64
	n   atomic.Int64
}

func newConnLimit(n int) *connLimit {
	return &connLimit{max: int64(n)}
}

// refusalResponse is the JSON 503 a connection over max connections gets.
func refusalResponse(n int64) []byte {
	body := appendError(nil, fmt.Sprintf("the gateway has its most connections (%d) open: retry, or reuse a connection", n))
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// take takes a connection's slot, or reports that none is free.
func (l *connLimit) take() bool {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		return false
	}
	return true
}

// release gives a connection's slot back.
func (l *connLimit) release() { l.n.Add(-1) }

// A lingerListener bounds the connections it hands out (lim) and makes
// them lingerConns. A connection over the bound is answered (see refuse)
// and closed by Accept itself: no goroutine, no buffer, nothing held.
type lingerListener struct {
	net.Listener
	lim *connLimit
	// refusal is what a connection over the bound is answered, a complete
	// HTTP response; nil closes it unanswered (TLS: a handshake per
	// refused connection would cost what the bound saves).
	refusal []byte
	// metrics count the refused connections.
	metrics *Metrics
}

func (l lingerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.lim.take() {
			return &lingerConn{Conn: c, lim: l.lim}, nil
		}
		// Counted first: the client may see the refusal before refuse
		// returns.
		l.metrics.connectionRefused()
		refuse(c, l.refusal)
	}
}
