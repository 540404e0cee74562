package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// An httpConn is a keep-alive HTTP/1.1 connection to the gateway.
type httpConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialHTTP(t *testing.T, addr string) *httpConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &httpConn{c: c, br: bufio.NewReader(c)}
}

// get sends GET /get/k with a token and returns the status, or an error
// when the connection ended.
func (c *httpConn) get() (int, string, error) {
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.c, "GET /get/k HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", adminToken()); err != nil {
		return 0, "", err
	}
	return c.read()
}

// getOK sends GET /get/k on c until it is answered 200 and returns the
// body. A 429 is the token's own quarter of --max-connections (one
// connection when the bound is 4): its request on another connection counts
// until the server has finished writing the response the client already
// read, so the request is sent again; anything else fails the test at once.
func (c *httpConn) getOK(t *testing.T, what string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		status, body, err := c.get()
		if err == nil && status == http.StatusOK {
			return body
		}
		if err != nil || status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("%s: want 200, got %d %q %v", what, status, body, err)
		}
	}
}

// read reads one response.
func (c *httpConn) read() (int, string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode == http.StatusServiceUnavailable &&
		(res.Header.Get("Retry-After") != "1" || res.Header.Get("Content-Type") != "application/json" || !res.Close || !isJSONError(string(b))) {
		return 0, "", fmt.Errorf("503 without Retry-After: 1, Connection: close and a JSON error: %v %q", res.Header, b)
	}
	return res.StatusCode, string(b), nil
}

// refused reports whether a new connection is answered the JSON 503 and
// closed, without sending anything.
func refused(t *testing.T, addr string) bool {
	t.Helper()
	c := dialHTTP(t, addr)
	defer c.c.Close()
	status, _, err := c.read()
	if err != nil {
		return false
	}
	if status != http.StatusServiceUnavailable {
		t.Fatalf("a new connection got %d unasked", status)
	}
	_, err = c.br.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Errorf("a refused connection was not closed after its 503: %v", err)
	}
	return true
}

// served polls until a new connection is served (the bound frees a
// connection's slot once the gateway noticed it closed) and returns it.
func served(t *testing.T, addr string) *httpConn {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c := dialHTTP(t, addr)
		status, body, err := c.get()
		if err == nil && status == http.StatusOK {
			return c
		}
		_ = c.c.Close()
		// A 429: the token's own quarter, its last request's response
		// still being written (see getOK).
		if err != nil || (status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests) {
			t.Fatalf("want 200, the JSON 503 or the token's 429, got %d %q %v", status, body, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a new connection is not served: the connections' bound leaked")
		}
	}
}

// subscribe makes c busy for good (see connLimit): a subscription stream,
// whose header it reads; it returns the status.
func (c *httpConn) subscribe() (int, error) {
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.c, "POST /subscribe/c HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n", adminToken()); err != nil {
		return 0, err
	}
	// The stream's body never ends: closing it would read it for good.
	res, err := http.ReadResponse(c.br, nil) //nolint:bodyclose // See above.
	if err != nil {
		return 0, err
	}
	_ = c.c.SetDeadline(time.Time{})
	return res.StatusCode, nil
}

// busy polls until a new connection is a subscription stream (the bound
// frees a connection's slot once the gateway noticed it closed) and
// returns it.
func busy(t *testing.T, addr string) *httpConn {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c := dialHTTP(t, addr)
		status, err := c.subscribe()
		if err == nil && status == http.StatusOK {
			return c
		}
		_ = c.c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a new connection does not become a stream: the connections' bound leaked (%d %v)", status, err)
		}
	}
}

// full checks that the bound has all its n slots, and no more: n
// connections are busy at once, and the next one is refused.
func full(t *testing.T, addr string, n int) {
	t.Helper()
	for range n {
		c := busy(t, addr)
		defer c.c.Close()
	}
	if !refused(t, addr) {
		t.Fatalf("with %d connections busy a new one was not refused: a slot was given back twice", n)
	}
}

// TestMaxConnections: a connection over the bound takes the slot of the
// connection idle the longest, which is closed (anyone could hold every
// slot with connections that send nothing); when every open connection is
// busy (here: subscription streams) it gets a JSON 503 (it was served
// before the bound: a few thousand idle connections from one machine took
// the pod's memory) and is counted (no request metric sees it); the busy
// ones keep being served, and closing one frees its slot.
func TestMaxConnections(t *testing.T) {
	const maxConns = 3
	e := newEnv(t, withConfig(Config{MaxConnections: maxConns, Metrics: NewMetrics(prometheus.NewRegistry())}))
	if err := e.admin.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(e.url, "http://")
	var idle []*httpConn
	for range maxConns {
		c := dialHTTP(t, addr)
		c.getOK(t, "a connection under the bound")
		idle = append(idle, c)
	}
	// Each stream evicts an idle connection (the one idle the longest:
	// which one that is depends on when the server saw each response
	// written, after the client read it).
	var streams []*httpConn
	closed := map[int]bool{}
	for i := range maxConns {
		c := dialHTTP(t, addr)
		if status, err := c.subscribe(); err != nil || status != http.StatusOK {
			t.Fatalf("a connection over the bound with %d idle: want a stream, got %d %v", maxConns-i, status, err)
		}
		testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d idle connections closed", i+1), func() error {
			for j, c := range idle {
				if closed[j] {
					continue
				}
				_ = c.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.br.ReadByte(); errors.Is(err, io.EOF) {
					closed[j] = true
				}
			}
			if len(closed) != i+1 {
				return fmt.Errorf("%d closed", len(closed))
			}
			return nil
		})
		streams = append(streams, c)
	}

	c := dialHTTP(t, addr)
	status, body, err := c.get()
	if err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("a connection over the bound sending a request, every open one busy: want a JSON 503, got %d %q %v", status, body, err)
	}
	if !refused(t, addr) {
		t.Fatalf("a connection over the bound reading first was not answered the JSON 503")
	}
	if n := testutil.ToFloat64(e.srv.cfg.Metrics.refused); n != 2 {
		t.Errorf("redishttp_gateway_connections_refused_total after two refusals: want 2, got %v", n)
	}
	if err := e.admin.Publish(context.Background(), "c", "m").Err(); err != nil {
		t.Fatal(err)
	}
	for i, c := range streams {
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var got []byte
		for b := make([]byte, 1); !strings.Contains(string(got), "message,c,m"); got = append(got, b[0]) {
			if _, err := c.c.Read(b); err != nil {
				t.Fatalf("stream %d after the refusals: %v after %q", i, err, got)
			}
		}
	}

	_ = streams[0].c.Close()
	served(t, addr)
}

// TestMaxConnectionsTLS: over TLS, a connection over the bound while every
// open one is busy is closed unanswered, before its handshake (a handshake
// per refused connection would cost what the bound saves), and counted;
// closing an open one frees its slot.
func TestMaxConnectionsTLS(t *testing.T) {
	const maxConns = 2
	e := newEnv(t)
	if err := e.admin.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := NewServer(e.rds, Config{MaxConnections: maxConns, Metrics: NewMetrics(prometheus.NewRegistry())})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, roots := testenv.SelfSigned(t, t.TempDir())
	hs := s.HTTPServer()
	go func() { _ = hs.ServeTLS(ln, certFile, keyFile) }()
	t.Cleanup(func() { _ = hs.Shutdown(context.Background()) })
	addr := ln.Addr().String()
	dialTLS := func() (*httpConn, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = c.Close() })
		return &httpConn{c: c, br: bufio.NewReader(c)}, nil
	}

	var open []*httpConn
	for range maxConns {
		c, err := dialTLS()
		if err != nil {
			t.Fatalf("a TLS connection under the bound: %v", err)
		}
		// Busy (see connLimit): an idle one would be evicted.
		if status, err := c.subscribe(); err != nil || status != http.StatusOK {
			t.Fatalf("a TLS connection under the bound: want a stream, got %d %v", status, err)
		}
		open = append(open, c)
	}

	// A client that waits for the server first reads the connection's
	// end: not one byte (a plain-text 503 would be garbage to TLS).
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(raw); err != nil || len(got) != 0 {
		t.Errorf("a TCP connection over the bound: want it closed with nothing written, got %q %v", got, err)
	}
	if _, err := dialTLS(); err == nil {
		t.Errorf("a TLS connection over the bound completed its handshake")
	}
	if n := testutil.ToFloat64(s.cfg.Metrics.refused); n != 2 {
		t.Errorf("redishttp_gateway_connections_refused_total after two refusals: want 2, got %v", n)
	}
	_ = open[0].c.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := dialTLS()
		if err == nil {
			c.getOK(t, "a TLS connection after one closed")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS connection is served after one closed: the connections' bound leaked (%v)", err)
		}
	}
}

// TestMaxConnectionsNoLeak: however a connection ends, its slot is given
// back: each way is repeated more often than there are slots, then all
// the slots serve at once.
func TestMaxConnectionsNoLeak(t *testing.T) {
	const maxConns = 2
	ends := map[string]struct {
		reason string
		idle   time.Duration
		end    func(t *testing.T, addr string)
	}{
		"ClientClose": {
			reason: "A client that closes its connection after a request frees its slot.",
			end:    func(t *testing.T, addr string) { _ = served(t, addr).c.Close() },
		},
		"IdleTimeout": {
			reason: "A keep-alive connection closed by the idle timeout frees its slot.",
			// Not shorter: the connections full holds must not time out.
			idle: time.Second,
			end: func(t *testing.T, addr string) {
				c := served(t, addr)
				_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
					t.Fatalf("want the idle connection closed by the gateway, got %v", err)
				}
			},
		},
		"HeaderTooLarge": {
			reason: "A 431, closed lingering, frees its slot.",
			end: func(t *testing.T, addr string) {
				c := served(t, addr)
				_, _ = fmt.Fprintf(c.c, "GET /get/%s HTTP/1.1\r\nHost: h\r\n\r\n", strings.Repeat("k", 8<<10))
				if status, _, err := c.read(); err != nil || status != http.StatusRequestHeaderFieldsTooLarge {
					t.Fatalf("want 431, got %d %v", status, err)
				}
				_ = c.c.Close()
			},
		},
		"BodyTooLarge": {
			reason: "A 413, closed lingering while the client keeps its side open, frees its slot.",
			end: func(t *testing.T, addr string) {
				c := served(t, addr)
				_, _ = fmt.Fprintf(c.c, "POST /set/k HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n%s\r\n", adminToken(), strings.Repeat("v", 2<<10))
				if status, _, err := c.read(); err != nil || status != http.StatusRequestEntityTooLarge {
					t.Fatalf("want 413, got %d %v", status, err)
				}
			},
		},
		"Refused": {
			reason: "A connection refused over the bound takes no slot.",
			end:    func(t *testing.T, addr string) { full(t, addr, maxConns) },
		},
	}
	for name, tc := range ends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withConfig(Config{MaxConnections: maxConns, IdleTimeout: tc.idle, MaxHeaderBytes: 4 << 10, MaxRequestBytes: 1 << 10}))
			addr := strings.TrimPrefix(e.url, "http://")
			for range 2 {
				tc.end(t, addr)
				full(t, addr, maxConns)
			}
		})
	}
}

// TestMaxConnectionsShutdown: Shutdown gives back the slots of the
// connections it closes (idle ones and one mid-request).
func TestMaxConnectionsShutdown(t *testing.T) {
	e := newEnv(t)
	s := NewServer(e.rds, Config{MaxConnections: 4, ReadHeaderTimeout: time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	for range 3 {
		c := dialHTTP(t, ln.Addr().String())
		c.getOK(t, "a connection under the bound")
	}
	// One connection stalled in its header.
	c := dialHTTP(t, ln.Addr().String())
	_, _ = io.WriteString(c.c, "GET /get/k HTTP/1.1\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); hs.conns.n.Load() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after Shutdown %d connections still count", hs.conns.n.Load())
		}
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	cases := map[string]struct {
		reason           string
		limit, maxMemory int64
		want             int
	}{
		"NoLimit":     {reason: "Without GOMEMLIMIT the bound is fixed.", limit: 0, maxMemory: 256 << 20, want: 4096},
		"ComposedPod": {reason: "A 256 MiB pod: GOMEMLIMIT 230.4 MiB, half of it for requests in flight, the rest at 32 KiB a connection.", limit: 256 << 20 * 9 / 10, maxMemory: 256 << 20 * 9 / 10 / 2, want: 3686},
		"NothingLeft": {reason: "A --max-memory above GOMEMLIMIT still allows a few connections.", limit: 64 << 20, maxMemory: 128 << 20, want: 64},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := DefaultMaxConnections(tc.limit, tc.maxMemory); got != tc.want {
				t.Errorf("%s\nDefaultMaxConnections(%d, %d): want %d, got %d", tc.reason, tc.limit, tc.maxMemory, tc.want, got)
			}
		})
	}
}
