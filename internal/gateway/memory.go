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
// written): the process's bound, and a quarter of it for each identity, so
// that one token sending or reading large values cannot take what the
// others need.
type memory struct {
	mu         sync.Mutex
	max, perID int64
	used       int64
	byID       map[tag]int64
}

// WithMaxMemory bounds the bytes the bodies and replies of all requests in
// flight may hold (see memory); by default, and with 0, they are unbounded.
func WithMaxMemory(n int64) RedisOption {
	return func(r *Redis) {
		if n > 0 {
			r.mem = newMemory(n, r.limits.MaxReplyBytes)
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

// newMemory returns a memory of total bytes, a quarter of it for each
// identity, or what the largest reply takes if that is more.
func newMemory(total, maxReply int64) *memory {
	perID := min(total, max(total/4, maxReply+reserveChunk))
	return &memory{max: total, perID: perID, byID: make(map[tag]int64)}
}

// take takes n bytes for t, or reports that they are not free.
func (m *memory) take(t tag, n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n > m.max-m.used || n > m.perID-m.byID[t] {
		return false
	}
	m.used += n
	m.byID[t] += n
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
