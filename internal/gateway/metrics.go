package gateway

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics. Labels are routes, status
// codes, error kinds and the ACL users of the busiest ApiKeys (usermetrics.go):
// never a token, key or command argument.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	subs     prometheus.Gauge
	refused  prometheus.Counter
	evicted  prometheus.Counter
	users    *userMetrics
}

// A MetricsOption configures the metrics.
type MetricsOption func(*metricsOptions)

type metricsOptions struct {
	topUsers int
}

// WithTopUsers sets how many ACL users get their own label (default
// DefaultTopUsers); the others are counted as "other". 0 counts every user
// as "other".
func WithTopUsers(n int) MetricsOption { return func(o *metricsOptions) { o.topUsers = n } }

// NewMetrics registers the gateway's metrics with reg.
func NewMetrics(reg prometheus.Registerer, opts ...MetricsOption) *Metrics {
	o := metricsOptions{topUsers: DefaultTopUsers}
	for _, fn := range opts {
		fn(&o)
	}
	m := &Metrics{
		users: newUserMetrics(o.topUsers, time.Minute, time.Now),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redishttp_gateway_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "redishttp_gateway_request_duration_seconds",
			Help:    "Time to answer an HTTP request (for subscriptions: until the stream ends), by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redishttp_gateway_redis_errors_total",
			Help: "Requests refused or failed on the Redis side, by kind (unavailable, timeout, pool-exhausted, too-busy, memory-full, reply-too-large).",
		}, []string{"kind"}),
		subs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redishttp_gateway_subscriptions",
			Help: "Open /subscribe and /psubscribe streams.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redishttp_gateway_connections_refused_total",
			Help: "Connections refused because the REST API had its most connections (--max-connections) open, each with a request in progress: they are no request, so redishttp_gateway_requests_total does not count them.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redishttp_gateway_connections_evicted_total",
			Help: "Idle connections (no request in progress) closed to make room for a new one at --max-connections.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.errors, m.subs, m.refused, m.evicted)
	reg.MustRegister(m.users.collectors()...)
	return m
}

func (m *Metrics) observe(route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

func (m *Metrics) redisError(kind string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(kind).Inc()
}

func (m *Metrics) subscriptions(delta float64) {
	if m == nil {
		return
	}
	m.subs.Add(delta)
}

func (m *Metrics) connectionRefused() {
	if m == nil {
		return
	}
	m.refused.Inc()
}

func (m *Metrics) connectionsEvicted(n int) {
	if m == nil || n == 0 {
		return
	}
	m.evicted.Add(float64(n))
}
