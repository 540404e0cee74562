package gateway

import (
	"container/list"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// An HTTPServer serves a Server's REST API.
//
// It is fasthttp's rather than net/http's: net/http's per-request machinery
// (a goroutine, a bufio pair, header maps and a context per request) kept
// GET /get/k well below webdis's requests/s, fasthttp reuses all of it per
// connection (figures in docs/testing.md). What fasthttp does differently, and how it is
// kept right here: it reads a request's header before the handler runs
// (bounded: 431 above MaxHeaderBytes, JSON from httpError, and the
// connection closed gracefully, see lingerConn), and the handler its body
// (readBody: 413 above MaxRequestBytes, 503 when the memory for requests
// in flight is full);
// its RequestCtx is not cancelled when a client leaves (a request is
// bounded by the Redis timeout instead, and a stream reads its connection
// to notice); paths are read as sent (PathOriginal), never cleaned.
type HTTPServer struct {
	srv   *Server
	fs    *fasthttp.Server
	conns *connLimit
}

// maxPooledBody bounds the request and response body buffers fasthttp
// keeps for reuse: a connection that once carried a 9 MiB body or reply
// would otherwise hold that buffer for as long as it stays open.
const maxPooledBody = 1 << 20

// HTTPServer returns the HTTP server of s's REST API.
func (s *Server) HTTPServer() *HTTPServer {
	fasthttp.SetBodySizePoolLimit(maxPooledBody, maxPooledBody)
	return &HTTPServer{srv: s, conns: newConnLimit(s.cfg.MaxConnections), fs: &fasthttp.Server{
		Handler:        s.handle,
		ErrorHandler:   s.httpError,
		HeaderReceived: s.headerReceived,
		ConnState:      connState,
		ExpectHandler:  s.expect,
		ReadBufferSize: s.cfg.MaxHeaderBytes,
		// The body's bound, and time, are per request: headerReceived.
		// Bodies are read by the handler, within the memory for requests
		// in flight: readBody.
		MaxRequestBodySize: int(s.cfg.MaxRequestBytes),
		StreamRequestBody:  true,
		ReadTimeout:        s.cfg.ReadHeaderTimeout,
		WriteTimeout:       s.cfg.WriteTimeout,
		IdleTimeout:        s.cfg.IdleTimeout,
		// The REST API has no forms.
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		// fasthttp's own log lines quote less of a request; debugLogger
		// logs none of them anyway.
		SecureErrorLogMessage: true,
		Logger:                debugLogger{s.cfg.Log},
		TLSConfig:             &tls.Config{MinVersion: tls.VersionTLS12},
	}}
}

// Serve serves the REST API on ln until Shutdown.
// A connection over Config.MaxConnections gets a JSON 503 with Retry-After
// and is closed.
func (h *HTTPServer) Serve(ln net.Listener) error {
	return h.fs.Serve(lingerListener{Listener: ln, lim: h.conns, refusal: refusalResponse(h.conns.max), metrics: h.srv.cfg.Metrics})
}

// ServeTLS serves the REST API over TLS on ln until Shutdown. A connection
// over Config.MaxConnections is closed before its handshake.
func (h *HTTPServer) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return h.fs.ServeTLS(lingerListener{Listener: ln, lim: h.conns, metrics: h.srv.cfg.Metrics}, certFile, keyFile)
}

// Shutdown ends the subscription streams, stops accepting connections and
// waits for the requests in flight to finish, or for ctx.
func (h *HTTPServer) Shutdown(ctx context.Context) error {
	h.srv.CloseStreams()
	return h.fs.ShutdownWithContext(ctx)
}

// headerReceived sets what a request may send once its header is read. A
// request without a well-formed token may send no body: it gets 401
// without its body being read (the request is made bodyless and its
// connection closes after the answer, see serve); others may send
// MaxRequestBytes within ReadTimeout, the header having had
// ReadHeaderTimeout.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if cl := h.ContentLength(); !hasToken(h) && cl != 0 && cl != -2 {
		h.SetContentLength(0)
		h.SetConnectionClose()
	}
	return fasthttp.RequestConfig{ReadTimeout: s.cfg.ReadTimeout}
}

// expect answers "Expect: 100-continue": a body that would be refused is
// refused before the client sends it, with its final status and nothing
// read: one without a token or above MaxRequestBytes, and one whose
// identity Redis does not accept (a well-formed token is not a valid one:
// Redis checks it now, or accepted it lately, see Redis.Check), or cannot
// take now (429, 503).
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if c := lingerConnOf(ctx); c != nil {
		c.lim.setIdle(c, false)
	}
	var status int
	if id, ok := s.identityOf(ctx); ok && int64(ctx.Request.Header.ContentLength()) <= s.cfg.MaxRequestBytes {
		// Not ctx: see serve.
		err := s.redis.Check(context.Background(), id)
		if err == nil {
			return fasthttp.StatusContinue
		}
		status = s.redisFailed(ctx, err)
	} else {
		status = s.refuseBody(ctx)
	}
	lingerOnClose(ctx)
	s.cfg.Metrics.observe(routeOf(ctx.Method(), ctx.URI().PathOriginal()), status, 0)
	return status
}

// A debugLogger logs fasthttp's messages (connection errors) at debug
// level, as their format only: their arguments may quote a request's
// header lines, a token among them.
type debugLogger struct{ log logging.Logger }

func (l debugLogger) Printf(format string, _ ...any) {
	l.log.Debug("HTTP connection error", "format", format)
}

// Bounds of a lingering close.
const (
	lingerTimeout  = time.Second
	maxLingerBytes = 16 << 20
)

// A lingerConn closes gracefully when asked to by lingerOnClose: fasthttp
// answers a request it refuses unread (413, 431) and closes at once, and
// closing a socket with unread bytes resets the connection, so the client,
// still sending its body, saw a reset instead of the JSON error. A lingering
// close ends the sending side first, then reads and discards what the
// client still sends (at most maxLingerBytes, for lingerTimeout) before
// closing, as net/http does. Its slot of the connections' bound is given
// back once it is closed, lingering included (a lingering connection is
// idle: a new connection over the bound ends its lingering, see
// connLimit); closing it again does nothing.
//
// It also releases what a request handed over to it (see atClose) when it
// closes, whether or not the HTTP server ever gave it to the request's
// hijack handler.
type lingerConn struct {
	net.Conn
	lim            *connLimit
	linger, closed atomic.Bool
	// slot is whether c holds its slot of lim.
	slot    atomic.Bool
	onClose atomic.Pointer[func()]
	// written is what the request being served holds until its
	// response is written (see untilWritten).
	written atomic.Pointer[func()]
	// elem is c's place among lim's idle connections, nil while it is
	// busy (see connLimit); guarded by lim.mu.
	elem *list.Element
}

func newLingerConn(c net.Conn, lim *connLimit) *lingerConn {
	lc := &lingerConn{Conn: c, lim: lim}
	lc.slot.Store(true)
	return lc
}

// giveSlot gives c's slot back, once.
func (c *lingerConn) giveSlot() {
	if c.slot.CompareAndSwap(true, false) {
		c.lim.release()
	}
}

// evict closes c, idle, at once (ending its lingering) and gives its slot
// back.
func (c *lingerConn) evict() {
	_ = c.Close()
	_ = c.Conn.Close()
	c.giveSlot()
}

func (c *lingerConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.responseWritten()
	if f := c.onClose.Swap(nil); f != nil {
		(*f)()
	}
	if !c.linger.Load() {
		c.lim.setIdle(c, false)
		defer c.giveSlot()
		return c.Conn.Close()
	}
	c.lim.setIdle(c, true)
	// Not on the caller's goroutine: a client may keep sending for
	// lingerTimeout.
	go func() {
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, c.Conn, maxLingerBytes)
		_ = c.Conn.Close()
		c.lim.setIdle(c, false)
		c.giveSlot()
	}()
	return nil
}

// lingerOnClose makes ctx's connection close gracefully.
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	if lc := lingerConnOf(ctx); lc != nil {
		lc.linger.Store(true)
	}
}

// atClose makes release run when ctx's connection closes, for what a
// request hands over to its hijack handler (a subscription's slots and
// Redis connection): fasthttp runs that handler only once the response
// before it in a pipeline was sent, and when sending it fails (the client
// reset the connection) it closes the connection without ever running it.
// release must be safe to run twice, and concurrently with the handler.
// It reports false when ctx's connection is none of the gateway's (then
// only the handler releases).
func atClose(ctx *fasthttp.RequestCtx, release func()) bool {
	lc := lingerConnOf(ctx)
	if lc == nil {
		return false
	}
	lc.onClose.Store(&release)
	return true
}

// untilWritten makes release run once ctx's response is written (or its
// connection taken over by a stream, or closed), and reports false when
// ctx's connection is none of the gateway's (then the caller releases).
func untilWritten(ctx *fasthttp.RequestCtx, release func()) bool {
	lc := lingerConnOf(ctx)
	if lc == nil {
		return false
	}
	lc.written.Store(&release)
	return true
}

// responseWritten runs what the request just served held until its
// response was written.
func (c *lingerConn) responseWritten() {
	if f := c.written.Swap(nil); f != nil {
		(*f)()
	}
}

func lingerConnOf(ctx *fasthttp.RequestCtx) *lingerConn { return unwrapConn(ctx.Conn()) }

// unwrapConn returns the lingerConn c is, or carries TLS over; nil for
// any other connection.
func unwrapConn(c net.Conn) *lingerConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*lingerConn)
	return lc
}
