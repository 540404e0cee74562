package apikey

import (
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/crossplane/crossplane-runtime/v2/pkg/ratelimiter"
)

// The ApiKey controller's work queue takes turns between namespaces, and is
// where the provider's global reconcile rate (--max-reconcile-rate) is kept.
//
// Before, the queue was first come, first served, and the global rate was
// kept by crossplane-runtime's rate limiting reconciler, which gives each
// request a turn in one line shared by everyone and requeues it for then:
// a tenant who created 1,000 ApiKeys put another tenant's rotation or
// revocation behind all of them (9.6 s at 100 reconciles/s). Now a request
// takes the next token of the global rate when a worker asks for work, and
// the work it gets is the next namespace's, in turn: another namespace's
// key waits for one turn, however many keys a namespace queued.

// newTurnsQueue returns the work queue of the controller called name: a
// client-go rate limiting queue (per-request back-off with perItem, as
// controller-runtime builds it) ordered by namespaceTurns, whose Get waits
// for the global rate limiter.
func newTurnsQueue(name string, perItem workqueue.TypedRateLimiter[reconcile.Request], global ratelimiter.RateLimiter) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	q := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[reconcile.Request]{Name: name, Queue: &namespaceTurns{}})
	dq := workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[reconcile.Request]{Name: name, Queue: q})
	rq := workqueue.NewTypedRateLimitingQueueWithConfig(perItem, workqueue.TypedRateLimitingQueueConfig[reconcile.Request]{Name: name, DelayingQueue: dq})
	return &rateLimitedGet{TypedRateLimitingInterface: rq, global: global, item: name, done: make(chan struct{})}
}

// namespaceTurns is the order of a client-go work queue (workqueue.Queue):
// first in, first out within a namespace, and one request of each namespace
// with work in turn. The work queue calls it under its own lock.
type namespaceTurns struct {
	// queued holds the requests of each namespace, oldest first.
	queued map[string][]reconcile.Request
	// ring holds the namespaces with queued requests; next is the one
	// whose turn it is.
	ring []string
	next int
	n    int
}

func (q *namespaceTurns) Push(r reconcile.Request) {
	if q.queued == nil {
		q.queued = map[string][]reconcile.Request{}
	}
	rs, ok := q.queued[r.Namespace]
	if !ok {
		// A namespace that had nothing queued joins the end of the
		// round: it waits for the turns of the namespaces still to have
		// theirs in it, not for their queues.
		q.ring = append(q.ring, r.Namespace)
	}
	q.queued[r.Namespace] = append(rs, r)
	q.n++
}

// Touch leaves a request that is queued again where it is: its namespace's
// turn comes as often whatever it queues.
func (q *namespaceTurns) Touch(reconcile.Request) {}

func (q *namespaceTurns) Len() int { return q.n }

// Pop returns the oldest request of the namespace whose turn it is. The
// work queue only calls it when Len is not 0.
func (q *namespaceTurns) Pop() reconcile.Request {
	ns := q.ring[q.next]
	rs := q.queued[ns]
	r := rs[0]
	rs[0] = reconcile.Request{}
	q.n--
	if len(rs) == 1 {
		delete(q.queued, ns)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	} else {
		q.queued[ns] = rs[1:]
		q.next++
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	return r
}

// rateLimitedGet makes a worker asking for work wait for the global rate
// limiter first, so that the work it gets is chosen (by namespaceTurns)
// when it can run, not when it was queued.
type rateLimitedGet struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	global ratelimiter.RateLimiter
	// item is what the global rate limiter is asked about; a bucket
	// limiter does not look at it.
	item string

	once sync.Once
	done chan struct{}
}

func (q *rateLimitedGet) Get() (reconcile.Request, bool) {
	if q.global == nil {
		return q.TypedRateLimitingInterface.Get()
	}
	if d := q.global.When(q.item); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-q.done:
			t.Stop()
		}
	}
	return q.TypedRateLimitingInterface.Get()
}

func (q *rateLimitedGet) ShutDown() {
	q.once.Do(func() { close(q.done) })
	q.TypedRateLimitingInterface.ShutDown()
}

func (q *rateLimitedGet) ShutDownWithDrain() {
	q.once.Do(func() { close(q.done) })
	q.TypedRateLimitingInterface.ShutDownWithDrain()
}
