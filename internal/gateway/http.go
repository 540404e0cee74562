package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// An HTTPServer serves a Server's REST API.
//
// It is fasthttp's rather than net/http's: measured with make bench-gateway
// in one run on one machine, net/http's per-request machinery (a goroutine,
// a bufio pair, header maps and a context per request) held GET /get/k to
// 0.65-0.69x webdis's requests/s; fasthttp, which reuses all of it per
// connection, reached 1.0x. What fasthttp does differently, and how it is
// kept right here: it reads a whole request before the handler runs
// (bounded: 413 above MaxRequestBytes, 431 above MaxHeaderBytes, both JSON
// from httpError, and the connection closed gracefully, see lingerConn);
// its RequestCtx is not cancelled when a client leaves (a request is
// bounded by the Redis timeout instead, and a stream reads its connection
// to notice); paths are read as sent (PathOriginal), never cleaned.
type HTTPServer struct {
	srv *Server
	fs  *fasthttp.Server
}

// HTTPServer returns the HTTP server of s's REST API.
func (s *Server) HTTPServer() *HTTPServer {
	return &HTTPServer{srv: s, fs: &fasthttp.Server{
		Handler:            s.handle,
		ErrorHandler:       s.httpError,
		ReadBufferSize:     s.cfg.MaxHeaderBytes,
		MaxRequestBodySize: int(s.cfg.MaxRequestBytes),
		ReadTimeout:        s.cfg.ReadTimeout,
		WriteTimeout:       s.cfg.WriteTimeout,
		IdleTimeout:        s.cfg.IdleTimeout,
		// The REST API has no forms.
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		// fasthttp's own log lines never quote a request (a token may be
		// in its query).
		SecureErrorLogMessage: true,
		Logger:                debugLogger{s.cfg.Log},
		TLSConfig:             &tls.Config{MinVersion: tls.VersionTLS12},
	}}
}

// Serve serves the REST API on ln until Shutdown.
func (h *HTTPServer) Serve(ln net.Listener) error { return h.fs.Serve(lingerListener{ln}) }

// ServeTLS serves the REST API over TLS on ln until Shutdown.
func (h *HTTPServer) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return h.fs.ServeTLS(lingerListener{ln}, certFile, keyFile)
}

// Shutdown ends the subscription streams, stops accepting connections and
// waits for the requests in flight to finish, or for ctx.
func (h *HTTPServer) Shutdown(ctx context.Context) error {
	h.srv.CloseStreams()
	return h.fs.ShutdownWithContext(ctx)
}

// A debugLogger logs fasthttp's messages (connection errors) at debug level.
type debugLogger struct{ log logging.Logger }

func (l debugLogger) Printf(format string, args ...any) {
	l.log.Debug("HTTP connection error", "message", fmt.Sprintf(format, args...))
}

// Bounds of a lingering close.
const (
	lingerTimeout  = time.Second
	maxLingerBytes = 16 << 20
)

type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// A lingerConn closes gracefully when asked to by lingerOnClose: fasthttp
// answers a request it refuses unread (413, 431) and closes at once, and
// closing a socket with unread bytes resets the connection, so the client,
// still sending its body, saw a reset instead of the JSON error. A lingering
// close ends the sending side first, then reads and discards what the
// client still sends (at most maxLingerBytes, for lingerTimeout) before
// closing, as net/http does.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

func (c *lingerConn) Close() error {
	if !c.linger.Load() {
		return c.Conn.Close()
	}
	// Not on the caller's goroutine: a client may keep sending for
	// lingerTimeout.
	go func() {
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, c.Conn, maxLingerBytes)
		_ = c.Conn.Close()
	}()
	return nil
}

// lingerOnClose makes ctx's connection close gracefully.
func lingerOnClose(ctx *fasthttp.RequestCtx) {
	c := ctx.Conn()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}
