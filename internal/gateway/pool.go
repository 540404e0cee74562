package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrPoolTimeout is returned when no connection became free in time.
var ErrPoolTimeout = errors.New("no Redis connection free in time")

// A pool holds at most size connections to one Redis. It prefers an idle
// connection already authenticated as the asking identity, so the hot path
// (one user, many requests) sends only the user's commands.
type pool struct {
	addr        string
	dialTimeout time.Duration
	wait        time.Duration
	limits      Limits
	sem         chan struct{}
	shares      shares

	// released is when a slot was last returned (Unix nanoseconds).
	released atomic.Int64

	mu   sync.Mutex
	idle []*conn // a stack: most recently used last
	// gen counts the times the pool found that its address no longer leads
	// to a writable master (see moved), since began; a connection keeps
	// the generation it was dialled in and is reused only within it.
	gen   uint64
	began time.Time
}

func newPool(addr string, size, connsPerKey int, dialTimeout, wait time.Duration, l Limits) *pool {
	p := &pool{addr: addr, dialTimeout: dialTimeout, wait: wait, limits: l, sem: make(chan struct{}, size), shares: shares{max: connsPerKey, floor: max(1, size/16)}}
	p.released.Store(time.Now().UnixNano())
	return p
}

// release returns a slot.
func (p *pool) release() {
	p.released.Store(time.Now().UnixNano())
	<-p.sem
}

// wedged reports whether every slot is taken and none was returned for
// longer than bound: a slot is held for one round, which its I/O deadline
// bounds, so a pool wedged like this is a bug that only a restart ends.
func (p *pool) wedged(now time.Time, bound time.Duration) bool {
	return len(p.sem) == cap(p.sem) && now.Sub(time.Unix(0, p.released.Load())) > bound
}

// scanIdle bounds how far get looks for a connection of the same identity.
const scanIdle = 16

// get returns a connection, preferably one authenticated as t. It waits for
// one of t's share (ErrTooBusy), for one of the pool (ErrPoolTimeout), and
// dials one, until the pool's wait or deadline at most.
func (p *pool) get(ctx context.Context, t tag, deadline time.Time) (*conn, error) {
	if err := p.shares.acquire(ctx, t, deadline); err != nil {
		return nil, err
	}
	c, err := p.slot(ctx, t, deadline)
	if err != nil {
		p.shares.release(t)
		return nil, err
	}
	c.share = t
	return c, nil
}

// slot takes a pool slot and returns a connection for it.
func (p *pool) slot(ctx context.Context, t tag, deadline time.Time) (*conn, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		// Every connection is busy: wait, but not forever (a hung
		// Redis holds each for up to the request timeout).
		t := time.NewTimer(min(p.wait, time.Until(deadline)))
		defer t.Stop()
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ErrPoolTimeout
		case <-t.C:
			return nil, ErrPoolTimeout
		}
	}
	for {
		c := p.pop(t)
		if c == nil {
			break
		}
		if alive(c.nc) == nil {
			return c, nil
		}
		c.close()
	}
	gen := p.generation()
	c, err := dial(ctx, p.addr, p.dialTimeout, deadline, p.limits)
	if err != nil {
		p.release()
		return nil, err
	}
	c.gen = gen
	return c, nil
}

func (p *pool) generation() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// minGeneration is the youngest a generation may be for moved to end it:
// while a failover moves the address (a Service) to the new master,
// connections dialled in the meantime may still lead to the old one, and
// dialling again at once would only lead there again. It bounds the
// pool's redials for a stuck address to the pool's size each period.
const minGeneration = 500 * time.Millisecond

// moved is told that c leads to a server that is no writable master any
// more (Redis said so, see Redis.do) or is gone (c failed): after a
// failover, every connection dialled before leads there. It starts a new
// generation, unless the current one is younger than minGeneration or
// began after c was dialled: the idle connections are closed, those in use
// are closed when put back, and the next ones are dialled again. It
// reports whether connections taken from now on were dialled after c.
func (p *pool) moved(c *conn, now time.Time) bool {
	p.mu.Lock()
	if c.gen != p.gen {
		p.mu.Unlock()
		return true
	}
	if now.Sub(p.began) < minGeneration {
		p.mu.Unlock()
		return false
	}
	p.gen++
	p.began = now
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, i := range idle {
		i.close()
	}
	return true
}

func (p *pool) pop(t tag) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	for i := n - 1; i >= 0 && i >= n-scanIdle; i-- {
		if c := p.idle[i]; c.tag == t {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			return c
		}
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c
}

// put returns c to the pool, or closes it when it is not reusable: only a
// connection at a reply boundary with nothing unread may serve another
// request (resp.Reader.Clean), and only in the generation it was dialled
// in (see moved).
func (p *pool) put(c *conn, reusable bool) {
	p.shares.release(c.share)
	c.share = tag{}
	if reusable {
		p.mu.Lock()
		if reusable = c.gen == p.gen; reusable {
			p.idle = append(p.idle, c)
		}
		p.mu.Unlock()
	}
	if !reusable {
		c.close()
	}
	p.release()
}

// drain closes every idle connection.
func (p *pool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.close()
	}
	p.idle = nil
}
