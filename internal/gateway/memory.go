package gateway

import (
	"errors"
	"math"
	"sync"
)

// ErrBusy is returned when the replies of the requests in flight already
// hold the memory the gateway may use for them: the request is refused
// (503, to retry) rather than the process running out of memory.
var ErrBusy = errors.New("the gateway's memory for replies in flight is full")

// A memory bounds the bytes that the bodies and replies of all requests in
// flight hold (a body from before it is read until it is answered, see
// readBody; a reply at resp.Decoder's cost: its bytes, and resp.ValueSize
// per array element, from the first byte read until the response is
// written), fairly between identities (see doc.go, Memory):
//   - the process's bound, max;
//   - an identity's share: a quarter of it, and room for its request's
//     own small body (reserveChunk), so that no two identities hold more
//     than half of it; a request reads at most a quarter (maxRead), so
//     that any request the gateway allows fits in its identity's share;
//   - a reserve: what three identities at their shares leave (a quarter,
//     less three chunks) is taken only by identities that hold at most a
//     sixteenth (floor), so that, however many identities read large
//     replies at once, an identity reading up to a sixteenth is served
//     unless three others read from the reserve at that moment.
type memory struct {
	mu                         sync.Mutex
	max, perID, floor, reserve int64
	used                       int64
	byID                       map[tag]int64
}

// WithMaxMemory bounds the bytes the bodies and replies of all requests in
// flight may hold (see memory), and with it what one request may read (a
// quarter of it, if less than Limits.MaxReplyBytes); by default, and with
// 0, they are unbounded.
func WithMaxMemory(n int64) RedisOption {
	return func(r *Redis) {
		if n > 0 {
			r.mem = newMemory(n)
		}
	}
}

// DefaultMaxMemory is the bound of WithMaxMemory for a process whose
// memory limit (GOMEMLIMIT) is limit: half of it, the rest for everything
// else (connections' buffers, the runtime); 256 MiB when no
// limit is set.
func DefaultMaxMemory(limit int64) int64 {
	if limit <= 0 || limit == math.MaxInt64 {
		return 256 << 20
	}
	return limit / 2
}

// reserveChunk is how much a request takes at once: one lock per request
// for most of them.
const reserveChunk = 64 << 10

// newMemory returns a memory of total bytes (see memory).
func newMemory(total int64) *memory {
	perID := total/4 + reserveChunk
	return &memory{max: total, perID: perID, floor: total / 16, reserve: total - 3*perID, byID: make(map[tag]int64)}
}

// maxRead is the most one request may read: what its identity's share
// holds besides the request's body.
func (m *memory) maxRead() int64 { return m.max / 4 }

// take takes n bytes for t, or reports that they are not free: not in the
// process's bound, not in t's share, or in the reserve while t would hold
// more than floor.
func (m *memory) take(t tag, n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	held, free := m.byID[t]+n, m.max-m.used-n
	if free < 0 || held > m.perID || held > m.floor && free < m.reserve {
		return false
	}
	m.used += n
	m.byID[t] = held
	return true
}

// give gives n bytes of t back.
func (m *memory) give(t tag, n int64) {
	if n == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.used -= n
	if m.byID[t] -= n; m.byID[t] <= 0 {
		delete(m.byID, t)
	}
}

// Held is the memory a request's replies hold until Release.
type Held struct {
	m *memory
	t tag
	n int64
}

// Release gives the memory back: once the response is written.
func (h Held) Release() {
	if h.m != nil {
		h.m.give(h.t, h.n)
	}
}

// Reserve takes n bytes for cl's replies (resp.Reserver), a chunk at a
// time.
func (cl *call) Reserve(n int64) bool {
	if n <= cl.spare {
		cl.spare -= n
		return true
	}
	chunk := max(n-cl.spare, reserveChunk)
	if !cl.mem.take(cl.id, chunk) {
		chunk = n - cl.spare
		if !cl.mem.take(cl.id, chunk) {
			return false
		}
	}
	cl.held += chunk
	cl.spare += chunk - n
	return true
}
