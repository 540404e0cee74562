package apikey

import (
	"context"
	"sync"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// slotWait is how long a reconcile waits for one of its namespace's slots
// before it gives its worker back: long enough for a Redis's first answer,
// short enough that a namespace of silent Redis servers holds nobody.
const slotWait = 100 * time.Millisecond

// slots bound how many reconciles of one namespace may at once wait on Redis
// servers that have not answered in time (yet): a tenant who points many
// ApiKeys at many servers that never answer holds at most that many of the
// provider's workers, however many ApiKeys and servers, and every other
// tenant keeps the rest. Redis servers that answer are not limited.
type slots struct {
	max int

	mu sync.Mutex
	ns map[string]chan struct{}
}

// take returns a release func once a slot of namespace ns is free, or once
// answered reports that the Redis answered after all (then nothing is
// held: a fresh Redis that a thousand keys wait on at once, as at a
// provider's start, answers the first of them and frees the others), or an
// error after slotWait.
func (s *slots) take(ctx context.Context, ns string, answered func() bool) (func(), error) {
	s.mu.Lock()
	if s.ns == nil {
		s.ns = map[string]chan struct{}{}
	}
	ch, ok := s.ns[ns]
	if !ok {
		ch = make(chan struct{}, max(s.max, 1))
		s.ns[ns] = ch
	}
	s.mu.Unlock()
	t := time.NewTimer(slotWait)
	defer t.Stop()
	poll := time.NewTicker(slotWait / 20)
	defer poll.Stop()
	for {
		select {
		case ch <- struct{}{}:
			return func() { <-ch }, nil
		case <-poll.C:
			if answered() {
				return func() {}, nil
			}
		case <-t.C:
			return nil, errors.Errorf("cannot reach Redis now: %d ApiKeys of namespace %q already wait on Redis servers that did not answer in time; retrying later", cap(ch), ns)
		case <-ctx.Done():
			return nil, errors.Wrap(ctx.Err(), "cannot wait for Redis")
		}
	}
}
