package gateway

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// OtherUsers is the user label of the requests of every ACL user outside
// the busiest ones (see topUsers).
const OtherUsers = "other"

// DefaultTopUsers is how many ACL users get their own label by default.
const DefaultTopUsers = 20

// userMetrics are the gateway's metrics per ACL user (an ApiKey, or the
// instance's default user), so that a tenant finds the app that hammers
// their Redis. Only requests Redis ran are counted: their user is one Redis
// accepted, so a client cannot invent label values with tokens of users
// that do not exist. At most topUsers.n users get their own label, the rest
// are "other": the series stay bounded whatever the clients do.
type userMetrics struct {
	top      *topUsers
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newUserMetrics(n int, window time.Duration, now func() time.Time) *userMetrics {
	m := &userMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redishttp_gateway_user_requests_total",
			Help: "Requests Redis ran, by ACL user (the busiest users by name, the rest as \"other\").",
		}, []string{"user"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redishttp_gateway_user_errors_total",
			Help: "Requests Redis ran that answered an error (status 400 and above), by ACL user.",
		}, []string{"user"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redishttp_gateway_user_request_bytes_total",
			Help: "Request body bytes of requests Redis ran, by ACL user.",
		}, []string{"user"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redishttp_gateway_user_response_bytes_total",
			Help: "Response body bytes of requests Redis ran, by ACL user.",
		}, []string{"user"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "redishttp_gateway_user_request_duration_seconds",
			Help:    "Time to answer a request Redis ran, by ACL user.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"user"}),
	}
	m.top = &topUsers{n: n, window: window, now: now, evict: m.forget}
	return m
}

func (m *userMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.errors, m.bytesIn, m.bytesOut, m.latency}
}

// forget removes the series of a user that is no longer among the busiest.
func (m *userMetrics) forget(user string) {
	m.requests.DeleteLabelValues(user)
	m.errors.DeleteLabelValues(user)
	m.bytesIn.DeleteLabelValues(user)
	m.bytesOut.DeleteLabelValues(user)
	m.latency.DeleteLabelValues(user)
}

func (m *userMetrics) observe(user string, status, in, out int, d time.Duration) {
	u := m.top.label(user)
	m.requests.WithLabelValues(u).Inc()
	if status >= 400 {
		m.errors.WithLabelValues(u).Inc()
	}
	m.bytesIn.WithLabelValues(u).Add(float64(in))
	m.bytesOut.WithLabelValues(u).Add(float64(out))
	m.latency.WithLabelValues(u).Observe(d.Seconds())
}

// topUsers chooses which users get their own label: the first n users seen,
// then, at the end of every window, any user outside them that made more
// requests in that window than the least busy of them takes its place (that
// one's series are deleted: it is "other" from then on). The requests of
// users outside are counted in a map of at most 4n users; when it is full a
// new user replaces the one with the fewest requests and inherits its count
// (the space-saving algorithm: a user busy enough to matter is never lost).
type topUsers struct {
	n      int
	window time.Duration
	now    func() time.Time
	evict  func(user string)

	mu      sync.Mutex
	since   time.Time
	tracked map[string]int64
	others  map[string]int64
}

func (t *topUsers) label(user string) string {
	if t.n <= 0 || user == OtherUsers {
		return OtherUsers
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tracked == nil {
		t.tracked, t.others, t.since = make(map[string]int64, t.n), make(map[string]int64, 4*t.n), t.now()
	}
	if now := t.now(); now.Sub(t.since) >= t.window {
		t.promote()
		t.since = now
	}
	if c, ok := t.tracked[user]; ok {
		t.tracked[user] = c + 1
		return user
	}
	if len(t.tracked) < t.n {
		t.tracked[user] = 1
		return user
	}
	if c, ok := t.others[user]; ok || len(t.others) < 4*t.n {
		t.others[user] = c + 1
		return OtherUsers
	}
	least, lc := leastBusy(t.others)
	delete(t.others, least)
	t.others[user] = lc + 1
	return OtherUsers
}

// promote swaps the users outside that were busier than the least busy
// users inside, and starts a new window.
func (t *topUsers) promote() {
	candidates := make([]string, 0, len(t.others))
	for u := range t.others {
		candidates = append(candidates, u)
	}
	slices.SortFunc(candidates, func(a, b string) int { return int(t.others[b] - t.others[a]) })
	for _, u := range candidates {
		least, lc := leastBusy(t.tracked)
		if t.others[u] <= lc {
			break
		}
		delete(t.tracked, least)
		t.evict(least)
		t.tracked[u] = t.others[u]
	}
	for u := range t.tracked {
		t.tracked[u] = 0
	}
	clear(t.others)
}

func leastBusy(m map[string]int64) (string, int64) {
	var least string
	lc := int64(-1)
	for u, c := range m {
		if lc < 0 || c < lc || c == lc && u < least {
			least, lc = u, c
		}
	}
	return least, lc
}

// userKey is where serve leaves the user of a request Redis ran.
const userKey = "redishttp-user"

// ranAs records that Redis ran the request as user.
func ranAs(ctx *fasthttp.RequestCtx, user string) { ctx.SetUserValue(userKey, user) }

// observeUser counts a request Redis ran by its user.
func (m *Metrics) observeUser(ctx *fasthttp.RequestCtx, status int, d time.Duration) {
	if m == nil || m.users == nil {
		return
	}
	user, ok := ctx.UserValue(userKey).(string)
	if !ok {
		return
	}
	m.users.observe(user, status, len(ctx.Request.Body()), responseSize(&ctx.Response), d)
}

// responseSize is the size of r's body. A streamed body's is its
// Content-Length: Body would read the whole stream into memory before
// the response is written (a 64 MiB value of NUL bytes is 384 MiB of
// JSON), after the replies' memory was given back.
func responseSize(r *fasthttp.Response) int {
	if r.IsBodyStream() {
		return r.Header.ContentLength()
	}
	return len(r.Body())
}
