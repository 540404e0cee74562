package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ai-decenter/redishttp/internal/resp"

	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// Routes, as metric labels.
const (
	RouteCommand    = "command"    // POST / with a JSON array
	RoutePath       = "path"       // GET|POST /cmd/arg...
	RoutePipeline   = "pipeline"   // POST /pipeline
	RouteMultiExec  = "multi-exec" // POST /multi-exec
	RouteSubscribe  = "subscribe"  // POST /subscribe/..., /psubscribe/...
	RouteNotAllowed = "other"
)

// Defaults of the gateway's settings (Config, NewRedis's arguments and
// Policy), for cmd/gateway's flags and for a zero Config.
const (
	DefaultPoolSize         = 256
	DefaultMaxSubscriptions = 1000
	DefaultDialTimeout      = 2 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxBlock         = 10 * time.Second
	DefaultMaxRequestBytes  = 10 << 20
	DefaultMaxCommands      = 10000
	DefaultMaxArgs          = 1 << 18
	// DefaultMaxHeaderBytes is twice what an NGINX ingress passes in one
	// header line (large_client_header_buffers 4 8k).
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// Config configures a Server.
type Config struct {
	// MaxRequestBytes bounds a request's body; larger ones get 413.
	MaxRequestBytes int64
	// Policy refuses and bounds commands.
	Policy Policy
	// MaxHeaderBytes bounds a request's request line and headers; larger
	// ones get 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds reading a request's line and headers,
	// ReadTimeout its body, WriteTimeout writing a response or one event of
	// a stream, IdleTimeout a keep-alive connection's wait for its next
	// request.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxCommands bounds the commands of one request, MaxArgs their
	// arguments in all; more is 400.
	MaxCommands, MaxArgs int
	// MaxSubscriptions bounds concurrent /subscribe streams, and
	// MaxSubscriptionsPerToken those of one token (0:
	// DefaultSubscriptionsPerToken).
	MaxSubscriptions, MaxSubscriptionsPerToken int
	// MaxConnections bounds the REST API's open connections (0:
	// DefaultMaxConnections without a memory limit); a connection over it
	// gets 503 with Retry-After and is closed.
	MaxConnections int
	Log            logging.Logger
	Metrics        *Metrics
}

// A Server serves the Upstash REST protocol.
type Server struct {
	redis   *Redis
	scripts *Scripts
	cfg     Config
	subs    chan struct{}
	// tokenSubs counts each token's streams, tokenConns its requests in
	// progress until their responses are written: the connections it
	// keeps busy (see connLimit).
	tokenSubs, tokenConns counts
	// closing is closed by CloseStreams: subscriptions end.
	closing   chan struct{}
	closeOnce sync.Once

	syncPrefix string
	syncN      atomic.Uint64
	bufs       sync.Pool
}

// NewServer returns a Server running commands on r.
func NewServer(r *Redis, cfg Config) *Server {
	orDefault(&cfg.MaxRequestBytes, DefaultMaxRequestBytes)
	orDefault(&cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&cfg.MaxCommands, DefaultMaxCommands)
	orDefault(&cfg.MaxArgs, DefaultMaxArgs)
	orDefault(&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&cfg.ReadTimeout, DefaultReadTimeout)
	orDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	orDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	orDefault(&cfg.MaxSubscriptions, DefaultMaxSubscriptions)
	orDefault(&cfg.MaxSubscriptionsPerToken, DefaultSubscriptionsPerToken(cfg.MaxSubscriptions))
	orDefault(&cfg.MaxConnections, DefaultMaxConnections(0, 0))
	if cfg.Log == nil {
		cfg.Log = logging.NewNopLogger()
	}
	p := make([]byte, 8)
	_, _ = rand.Read(p)
	return &Server{
		redis: r, scripts: NewScripts(10000), cfg: cfg,
		subs:       make(chan struct{}, cfg.MaxSubscriptions),
		tokenSubs:  counts{max: cfg.MaxSubscriptionsPerToken},
		tokenConns: counts{max: DefaultConnectionsPerToken(cfg.MaxConnections)},
		closing:    make(chan struct{}),
		syncPrefix: hex.EncodeToString(p) + "-",
		bufs:       sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }},
	}
}

// orDefault sets *v to d when it is not positive.
func orDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// CloseStreams ends every subscription stream, for a graceful shutdown
// (streams never end on their own, and the HTTP server's Shutdown does
// not wait for them: they left its connection accounting when they took
// over their connection).
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

// routeOf names a request's route.
func routeOf(method, path []byte) string {
	post := string(method) == fasthttp.MethodPost
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodHead:
	default:
		return RouteNotAllowed
	}
	switch {
	case string(path) == "/" && string(method) != fasthttp.MethodGet && string(method) != fasthttp.MethodHead:
		return RouteCommand
	case string(path) == "/pipeline" && post:
		return RoutePipeline
	case string(path) == "/multi-exec" && post:
		return RouteMultiExec
	case bytes.HasPrefix(path, []byte("/subscribe/")) || bytes.HasPrefix(path, []byte("/psubscribe/")):
		return RouteSubscribe
	}
	return RoutePath
}

// handle dispatches by path by hand: the protocol puts any bytes in a
// path (/set/k//v, /get/a%2F..), which a router would clean or redirect,
// and wants JSON where a router answers 405 with a text body.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	defer func() {
		if s.recovered(recover()) {
			ctx.Response.Reset()
			if ctx.Request.IsBodyStream() {
				s.unread(ctx)
			}
			status := s.fail(ctx, http.StatusInternalServerError, "the gateway failed on this request")
			s.cfg.Metrics.observe(routeOf(ctx.Method(), ctx.URI().PathOriginal()), status, time.Since(start))
		}
	}()
	if c := lingerConnOf(ctx); c != nil {
		c.lim.setIdle(c, false)
	}
	route, status := s.serve(ctx, start)
	if ctx.Request.IsBodyStream() {
		// Answered without its body read (405, 401...): the HTTP
		// server would read and drop the rest of it, up to 256 KiB
		// for up to the read timeout, with the connection busy and
		// counted against no token; close it instead.
		s.unread(ctx)
	}
	if status != 0 {
		d := time.Since(start)
		s.cfg.Metrics.observe(route, status, d)
		s.cfg.Metrics.observeUser(ctx, status, d)
	}
}

// recovered logs p, what recover returned, and reports whether it was a
// panic. fasthttp recovers no panic (net/http did): one request's bug would
// otherwise stop the gateway for every client.
func (s *Server) recovered(p any) bool {
	if p == nil {
		return false
	}
	// A panic's value and stack carry no request data: runtime errors
	// name types and indexes, stacks hold addresses.
	s.cfg.Log.Info("A request failed: the gateway panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return true
}

// serve answers a request and returns its route and status, or status 0
// when the request became a stream that observes its own metrics.
func (s *Server) serve(ctx *fasthttp.RequestCtx, start time.Time) (string, int) {
	method := ctx.Method()
	p := ctx.URI().PathOriginal()
	route := routeOf(method, p)
	if route == RouteNotAllowed {
		return route, s.fail(ctx, http.StatusMethodNotAllowed, "method "+string(method)+" is not allowed: use GET, POST, PUT or HEAD")
	}
	id, ok := s.identityOf(ctx)
	if !ok {
		if ctx.Request.Header.ConnectionClose() {
			// Its body, if it sent one, is unread (headerReceived).
			lingerOnClose(ctx)
		}
		return route, s.unauthorized(ctx)
	}
	if !s.tokenConns.take(id.tag) {
		s.unread(ctx)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		return route, s.fail(ctx, http.StatusTooManyRequests, fmt.Sprintf("too many requests of this token in progress on the gateway's connections: at most %d at once", s.tokenConns.max))
	}
	// Given back once the response is written (a client that does not
	// read keeps its connection busy until the write timeout), or when
	// the request ends where its connection is none of the gateway's.
	if !untilWritten(ctx, func() { s.tokenConns.give(id.tag) }) {
		defer s.tokenConns.give(id.tag)
	}
	release, status := s.readBody(ctx, id)
	if status != 0 {
		return route, status
	}
	defer release()
	if route == RouteSubscribe {
		return route, s.subscribe(ctx, id, string(p), start)
	}
	rq, err := s.parse(ctx, route, p)
	if err != nil {
		return route, s.fail(ctx, http.StatusBadRequest, err.Error())
	}
	// Not ctx: a RequestCtx is done only when the server shuts down, and
	// requests in flight then are to finish. The Redis timeout bounds it.
	replies, held, err := s.redis.Do(context.Background(), id, rq.cmds, rq.mode)
	if err != nil {
		return route, s.redisFailed(ctx, err)
	}
	if s.cfg.Metrics != nil {
		ranAs(ctx, id.User)
	}
	return route, s.encode(ctx, route, rq, replies, held)
}

// A request is what a request asks Redis to run.
type request struct {
	cmds [][][]byte
	mode Mode
	// loadSHA[i], when set, is what command i (a SCRIPT LOAD the
	// gateway rewrote, see Scripts) answers.
	loadSHA []string
}

// parse reads the commands of a request of route (not a subscription) at
// path p and checks them against the policy; its errors are 400s.
func (s *Server) parse(ctx *fasthttp.RequestCtx, route string, p []byte) (request, error) {
	body := ctx.PostBody()
	var rq request
	switch route {
	case RouteCommand:
		c, err := jsonCommand(body, s.cfg.MaxArgs)
		if err != nil {
			return rq, err
		}
		rq.cmds = [][][]byte{c}
	case RoutePath:
		c, err := pathCommand(string(p), string(ctx.URI().QueryString()), body)
		if err != nil {
			return rq, err
		}
		rq.cmds = [][][]byte{c}
	default:
		var err error
		if rq.cmds, err = jsonCommands(body, s.cfg.MaxCommands, s.cfg.MaxArgs); err != nil {
			return rq, err
		}
	}
	if route == RouteMultiExec {
		rq.mode = ModeAlone
	}
	for i, c := range rq.cmds {
		m, err := s.cfg.Policy.check(c)
		if err == nil && route == RouteMultiExec {
			err = inTransaction(c)
		}
		if err != nil {
			return rq, err
		}
		rq.mode = max(rq.mode, m)
		if sha := s.scripts.rewrite(c); sha != "" {
			if rq.loadSHA == nil {
				rq.loadSHA = make([]string, len(rq.cmds))
			}
			rq.loadSHA[i] = sha
		}
	}
	if route == RouteMultiExec {
		tx := make([][][]byte, 0, len(rq.cmds)+2)
		tx = append(tx, [][]byte{[]byte("MULTI")})
		tx = append(tx, rq.cmds...)
		tx = append(tx, [][]byte{[]byte("EXEC")})
		rq.cmds = tx
	}
	return rq, nil
}

// encode answers rq's replies as JSON and returns the status. The
// replies' memory is released once the response is written.
func (s *Server) encode(ctx *fasthttp.RequestCtx, route string, rq request, replies []resp.Value, held Held) int {
	e := encoder{b64: bytes.EqualFold(ctx.Request.Header.PeekBytes(headerEncoding), []byte("base64"))}
	if held.n > streamAbove {
		return s.streamBody(ctx, &e, route, replies, rq.loadSHA, held)
	}
	defer held.Release()
	e.buf = s.getBuf()
	defer func() { s.putBuf(e.buf) }()
	status := encodeBody(&e, route, replies, rq.loadSHA)
	s.write(ctx, status, e.buf)
	return status
}

// streamAbove is the size of replies (as memory counts them) above which a
// response is encoded while it is written rather than before.
const streamAbove = 64 << 10

// streamBody answers replies whose JSON may be many times their size (a NUL
// byte is six bytes of JSON): an encoding pass that only counts gives the
// body's length, a second one writes it a piece at a time as fasthttp
// sends it, and the replies' memory is released once it is written.
func (s *Server) streamBody(ctx *fasthttp.RequestCtx, e *encoder, route string, replies []resp.Value, sha []string, held Held) int {
	var n countingWriter
	e.w = &n
	status := encodeBody(e, route, replies, sha)
	e.flush(true)
	pr, pw := io.Pipe()
	go func() {
		defer held.Release()
		w := encoder{w: pw, b64: e.b64, buf: make([]byte, 0, flushAt+6*strChunk)}
		encodeBody(&w, route, replies, sha)
		w.flush(true)
		_ = pw.CloseWithError(w.err)
	}()
	s.head(ctx, status)
	ctx.SetBodyStream(pr, int(n.n))
	return status
}

// A countingWriter counts what is written to it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// encodeBody writes the response body of a request of route whose commands
// had replies, and returns its status: a single command's error reply and
// a failed transaction are 400.
func encodeBody(e *encoder, route string, replies []resp.Value, sha []string) int {
	shaOf := func(i int) string {
		if sha == nil {
			return ""
		}
		return sha[i]
	}
	switch route {
	case RoutePipeline:
		e.replies(replies, shaOf)
	case RouteMultiExec:
		exec := replies[len(replies)-1]
		switch exec.Kind {
		case resp.KindArray:
			e.replies(exec.Elems, shaOf)
		case resp.KindError:
			e.error(exec.Str)
			return http.StatusBadRequest
		default:
			e.error([]byte("EXECABORT Transaction discarded"))
			return http.StatusBadRequest
		}
	default:
		e.reply(replies[0], shaOf(0))
		if replies[0].IsError() {
			return http.StatusBadRequest
		}
	}
	return http.StatusOK
}

// httpError answers a request fasthttp could not read.
func (s *Server) httpError(ctx *fasthttp.RequestCtx, err error) {
	var status int
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		lingerOnClose(ctx)
		status = s.refuseBody(ctx)
	case errors.As(err, &small):
		lingerOnClose(ctx)
		status = s.fail(ctx, http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request line and headers larger than %d bytes: send large values in the body", s.cfg.MaxHeaderBytes))
	case errors.As(err, &ne) && ne.Timeout():
		status = s.fail(ctx, http.StatusRequestTimeout, "the request was not received in time")
	default:
		status = s.fail(ctx, http.StatusBadRequest, "cannot parse the HTTP request")
	}
	s.cfg.Metrics.observe(routeOf(ctx.Method(), ctx.URI().PathOriginal()), status, 0)
}

func (s *Server) getBuf() []byte { return (*s.bufs.Get().(*[]byte))[:0] }

func (s *Server) putBuf(b []byte) {
	if b == nil || cap(b) > 1<<20 {
		return
	}
	s.bufs.Put(&b)
}

var (
	contentTypeJSON = []byte("application/json")
	headerSyncToken = []byte("Upstash-Sync-Token")
	headerEncoding  = []byte("Upstash-Encoding")
)

func (s *Server) write(ctx *fasthttp.RequestCtx, status int, body []byte) {
	s.head(ctx, status)
	ctx.SetBody(body)
}

// head sets a response's status and headers.
func (s *Server) head(ctx *fasthttp.RequestCtx, status int) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	var tok [64]byte
	ctx.Response.Header.SetCanonical(headerSyncToken, strconv.AppendUint(append(tok[:0], s.syncPrefix...), s.syncN.Add(1), 10))
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, status int, msg string) int {
	s.write(ctx, status, appendError(nil, msg))
	return status
}

func (s *Server) unauthorized(ctx *fasthttp.RequestCtx) int {
	return s.fail(ctx, http.StatusUnauthorized, "Unauthorized: missing, malformed or refused token")
}

// refuseBody answers a request whose body was refused unread: 401 when it
// has no well-formed token (such a request may send no body), else 413.
// fasthttp forgets the header of a chunked body it refused: that is a 413
// whose text names both limits.
func (s *Server) refuseBody(ctx *fasthttp.RequestCtx) int {
	if h := &ctx.Request.Header; len(h.RawHeaders()) > 0 && !hasToken(h) {
		return s.unauthorized(ctx)
	}
	return s.tooLarge(ctx)
}

func (s *Server) tooLarge(ctx *fasthttp.RequestCtx) int {
	return s.fail(ctx, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes (or any body without a token)", s.cfg.MaxRequestBytes))
}

// busy answers a request refused because the memory for requests in
// flight is full: 503, to retry.
func (s *Server) busy(ctx *fasthttp.RequestCtx, msg string) int {
	s.cfg.Metrics.redisError("memory-full")
	ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
	return s.fail(ctx, http.StatusServiceUnavailable, msg)
}

// redisFailed answers an error of Redis.Do. Its message never carries a
// command argument or key.
func (s *Server) redisFailed(ctx *fasthttp.RequestCtx, err error) int {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return s.unauthorized(ctx)
	case errors.Is(err, ErrBusy):
		return s.busy(ctx, "the gateway is short of memory for replies in flight: retry later, or read less per request")
	case errors.Is(err, ErrReplyTooLarge):
		s.cfg.Metrics.redisError("reply-too-large")
		return s.fail(ctx, http.StatusBadRequest, fmt.Sprintf("ERR reply too large for the gateway: a request may read %d bytes (its replies, and 64 per array element): read less per request", s.redis.MaxReplyBytes()))
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		s.cfg.Metrics.redisError("timeout")
		return s.fail(ctx, http.StatusGatewayTimeout, "Redis did not answer in time")
	case errors.Is(err, ErrTooBusy):
		s.cfg.Metrics.redisError("too-busy")
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		return s.fail(ctx, http.StatusTooManyRequests, fmt.Sprintf("too many requests of this token in flight: it holds its share of the connections to Redis (%d, or %d while other tokens hold most of them); retry later", s.redis.pool.shares.max, s.redis.pool.shares.floor))
	case errors.Is(err, ErrPoolTimeout):
		s.cfg.Metrics.redisError("pool-exhausted")
		return s.fail(ctx, http.StatusServiceUnavailable, "no Redis connection free in time")
	default:
		s.cfg.Metrics.redisError("unavailable")
		s.cfg.Log.Info("Cannot reach Redis", "error", err)
		return s.fail(ctx, http.StatusServiceUnavailable, "Redis is unavailable")
	}
}
