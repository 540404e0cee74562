package gateway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrTooBusy is returned when a request waited shareWait for one of its
// identity's connections (see shares) in vain.
var ErrTooBusy = errors.New("too many requests of this token in flight")

// shareWait bounds how long a round waits for a connection of its
// identity's share: long enough for the rounds of ordinary commands ahead
// of it to end, short enough that a client whose blocking commands hold its
// share learns it (429, Retry-After) instead of a timeout.
const shareWait = time.Second

// DefaultConnsPerToken is the most connections one identity may hold when
// not configured: a quarter of the pool, at least one. So one token, with
// any number of blocking commands, slow scripts or huge pipelines in
// flight, leaves three quarters of the pool to the others, two tokens half
// of it (see shares for the last quarter).
func DefaultConnsPerToken(poolSize int) int { return max(1, poolSize/4) }

// A RedisOption configures a Redis.
type RedisOption func(*Redis)

// WithConnsPerToken sets the most pooled connections one identity may hold
// at once (see shares); 0 keeps DefaultConnsPerToken.
func WithConnsPerToken(n int) RedisOption {
	return func(r *Redis) {
		if n > 0 {
			r.pool.shares.max = n
		}
	}
}

// shares bounds the pooled connections each identity holds at once: every
// round (a request, a batch, a blocking command, a transaction) holds one
// from its start to its end. An identity holds at most max; and once the
// identities together hold three times max (three identities at their
// shares: the pool but its last quarter by default), only identities
// holding fewer than floor (a sixteenth of the pool) take more, so that
// however many tokens keep blocking commands in flight, another token's
// requests find a connection unless three others read from that reserve
// at the same moment. A round over its identity's share or the reserve
// waits, in order, for one of that identity's connections to come back,
// for shareWait (or until its deadline) at most; it takes no pool slot
// while it waits, so it holds up no other identity. The zero tag (the
// gateway's own Ping and Verify) has no share.
type shares struct {
	max, floor int

	mu sync.Mutex
	m  map[tag]*share
	// held counts the connections all identities hold.
	held int
}

type share struct {
	held int
	// waiting are the rounds waiting for a connection of this identity,
	// first come first: release hands its connection to waiting[0].
	waiting []chan struct{}
}

// acquire takes one of t's connections, waiting until deadline or ctx at
// most; it returns ErrTooBusy when none came back in time.
func (s *shares) acquire(ctx context.Context, t tag, deadline time.Time) error {
	if t == (tag{}) {
		return nil
	}
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[tag]*share)
	}
	sh := s.m[t]
	if sh == nil {
		sh = &share{}
		s.m[t] = sh
	}
	if sh.held < s.max && (sh.held < s.floor || s.held < 3*s.max) {
		sh.held++
		s.held++
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{}, 1)
	sh.waiting = append(sh.waiting, ready)
	s.mu.Unlock()

	timer := time.NewTimer(min(time.Until(deadline), shareWait))
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	s.mu.Lock()
	for i, w := range sh.waiting {
		if w == ready {
			sh.waiting = append(sh.waiting[:i], sh.waiting[i+1:]...)
			s.mu.Unlock()
			return ErrTooBusy
		}
	}
	s.mu.Unlock()
	// A connection was handed over meanwhile: pass it on.
	<-ready
	s.release(t)
	return ErrTooBusy
}

// release gives back one of t's connections: to the first round waiting
// for one, else to the pool.
func (s *shares) release(t tag) {
	if t == (tag{}) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.m[t]
	if len(sh.waiting) > 0 {
		w := sh.waiting[0]
		sh.waiting[0] = nil
		sh.waiting = sh.waiting[1:]
		w <- struct{}{}
		return
	}
	sh.held--
	s.held--
	if sh.held == 0 {
		delete(s.m, t)
	}
}

// DefaultSubscriptionsPerToken is the most subscription streams one
// identity may hold when not configured: a quarter of the gateway's, at
// least one.
func DefaultSubscriptionsPerToken(maxSubscriptions int) int { return max(1, maxSubscriptions/4) }

// counts bounds how many of something (subscription streams) each identity
// holds at once.
type counts struct {
	max int

	mu sync.Mutex
	m  map[tag]int
}

// take takes one for t, and reports false when t holds max already.
func (c *counts) take(t tag) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[t] >= c.max {
		return false
	}
	if c.m == nil {
		c.m = make(map[tag]int)
	}
	c.m[t]++
	return true
}

// give gives one of t's back.
func (c *counts) give(t tag) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[t]--; c.m[t] <= 0 {
		delete(c.m, t)
	}
}
