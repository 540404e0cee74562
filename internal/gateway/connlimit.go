package gateway

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"
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

// DefaultConnectionsPerToken is the most connections one token's requests
// in progress may keep busy (see connLimit) of maxConnections: a quarter,
// at least one. A request over it is answered 429, its body unread.
func DefaultConnectionsPerToken(maxConnections int) int { return max(1, maxConnections/4) }

// A connLimit counts the open connections of an HTTPServer: each holds
// buffers whatever it sends (no token needed), and without a bound a few
// thousand idle or stalled connections from one machine took the
// process's memory.
//
// A bound alone is a slot for anyone to take: connections that send
// nothing, or a request's header a byte at a time, opened again every
// read-header timeout, held every slot, no token needed. So the
// connections with no request in progress (never sent one, idle between
// requests, or still sending a request's line and headers) are idle, in
// the order they became so, and a connection over the bound takes the
// slot of the one idle the longest (evict), which is closed. A connection
// is busy from when its request's handler starts until its response is
// written (each token's busy connections are bounded by Server, see
// tokenConns), and for good once a subscription stream took it over; only
// a connection over the bound while every open one is busy is refused.
type connLimit struct {
	max int64
	n   atomic.Int64

	mu   sync.Mutex
	idle list.List // of *lingerConn, the longest idle first
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

// admit takes a slot for a new connection, evicting the connection idle
// the longest when none is free, or reports that every open connection is
// busy; evicted counts the connections it evicted.
func (l *connLimit) admit() (evicted int, ok bool) {
	for ; ; evicted++ {
		if l.take() {
			return evicted, true
		}
		l.mu.Lock()
		e := l.idle.Front()
		if e == nil {
			l.mu.Unlock()
			return evicted, false
		}
		c := l.idle.Remove(e).(*lingerConn)
		c.elem = nil
		l.mu.Unlock()
		c.evict()
	}
}

// setIdle makes c idle (evictable) since now, or busy.
func (l *connLimit) setIdle(c *lingerConn, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case idle && c.elem == nil && c.slot.Load():
		c.elem = l.idle.PushBack(c)
	case !idle && c.elem != nil:
		l.idle.Remove(c.elem)
		c.elem = nil
	}
}

// connState follows fasthttp's view of its connections: one whose
// response was written is idle again, one a stream took over busy for
// good (a closed one leaves the idle ones as it closes, lingering or not).
func connState(nc net.Conn, s fasthttp.ConnState) {
	c := unwrapConn(nc)
	if c == nil {
		return
	}
	switch s {
	case fasthttp.StateIdle:
		c.responseWritten()
		c.lim.setIdle(c, true)
	case fasthttp.StateHijacked:
		c.responseWritten()
		c.lim.setIdle(c, false)
	}
}

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
	// metrics count the refused and evicted connections.
	metrics *Metrics
}

func (l lingerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		evicted, ok := l.lim.admit()
		l.metrics.connectionsEvicted(evicted)
		if ok {
			lc := newLingerConn(c, l.lim)
			l.lim.setIdle(lc, true)
			return lc, nil
		}
		// Counted first: the client may see the refusal before refuse
		// returns.
		l.metrics.connectionRefused()
		refuse(c, l.refusal)
	}
}
