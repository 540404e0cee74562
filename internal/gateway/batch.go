package gateway

import (
	"context"
	"fmt"
	"sync"
)

// Bounds of batching (see Redis.Do).
const (
	// maxRounds bounds the rounds of one identity in flight: requests
	// arriving while that many run wait for one to end. More than one, so
	// that a slow command (a long script, KEYS) holds up the requests
	// batched with it, not every request of its token: it takes maxRounds
	// slow commands at once to make the token's other requests wait. 4
	// isolates better than 2 and served as many requests (docs/testing.md).
	maxRounds = 4
	// maxBatch and maxBatchBytes bound one round's requests and the bytes
	// of their arguments.
	maxBatch      = 64
	maxBatchBytes = 1 << 20
)

// errRoundAborted is a waiting call's error when its round ended without
// running it (a panic).
var errRoundAborted = fmt.Errorf("%w: the request's round ended without an answer", ErrUnavailable)

// batches batches the ModeShared requests of each identity.
//
// Each identity with rounds in flight has a group. A request that finds
// fewer than maxRounds rounds of its identity in flight runs at once, in a
// round of its own, on its own goroutine: without concurrency, nothing
// waits. Otherwise it joins the group's queue and waits. A round that ends
// takes the queue's first requests (up to maxBatch and maxBatchBytes) as
// the next round and hands it to the first of them, whose goroutine runs
// it and hands the others their replies. Every round ends (a connection's
// I/O deadline bounds it, and a panic ends it too: finish is deferred), so
// no request waits forever.
type batches struct {
	// rounds, when not 0, lowers maxRounds: see limit.
	rounds int

	mu     sync.Mutex
	groups map[tag]*group
}

type group struct {
	rounds int
	queue  []*call
}

// do runs cl as id, perhaps batched, and sets its replies or error.
func (b *batches) do(r *Redis, id Identity, cl *call) {
	b.mu.Lock()
	if b.groups == nil {
		b.groups = make(map[tag]*group)
	}
	g := b.groups[id.tag]
	if g == nil {
		g = &group{}
		b.groups[id.tag] = g
	}
	if g.rounds < b.limit() {
		g.rounds++
		b.mu.Unlock()
		b.run(r, id, g, []*call{cl})
		return
	}
	cl.lead = make(chan bool, 1)
	g.queue = append(g.queue, cl)
	b.mu.Unlock()
	if <-cl.lead {
		b.run(r, id, g, cl.batch)
	}
}

// run runs batch as one round of g, then hands each waiting call of it its
// replies and starts g's next rounds.
func (b *batches) run(r *Redis, id Identity, g *group, batch []*call) {
	done := false
	defer func() {
		// batch[0] is this goroutine's own call.
		for _, cl := range batch[1:] {
			if !done {
				cl.err = errRoundAborted
			}
			cl.lead <- false
		}
		b.finish(id, g, b.limit())
	}()
	r.round(context.Background(), id, batch, false)
	done = true
}

// limit is the most rounds of one identity in flight: maxRounds, or fewer
// when the identity's share of the pool is smaller (its rounds would wait
// for a connection instead of batching).
func (b *batches) limit() int {
	if b.rounds > 0 {
		return min(maxRounds, b.rounds)
	}
	return maxRounds
}

// finish ends a round of g: it starts rounds for the waiting calls, up to
// limit in flight, or forgets g when nothing is left to do.
func (b *batches) finish(id Identity, g *group, limit int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g.rounds--
	for g.rounds < limit && len(g.queue) > 0 {
		n, size := 1, g.queue[0].size
		for n < len(g.queue) && n < maxBatch && size+g.queue[n].size <= maxBatchBytes {
			size += g.queue[n].size
			n++
		}
		next := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.rounds++
		next[0].batch = next
		next[0].lead <- true
	}
	if g.rounds == 0 {
		g.queue = nil
		delete(b.groups, id.tag)
	}
}
