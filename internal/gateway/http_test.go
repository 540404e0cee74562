package gateway

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// raw sends req on a new TCP connection and returns what the gateway
// answers within d, or until it closes the connection.
func (e *env) raw(t *testing.T, req string, d time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, _ := io.ReadAll(c)
	return string(b)
}

// heapAfter returns how much the live heap grew while fn ran (and what it
// left behind stayed reachable).
func heapAfter(fn func()) int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	fn()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc) - int64(before)
}

// TestNoBodyWithoutToken: anyone who reaches the gateway can send bodies;
// without a well-formed token they are refused with 401 unread, not read
// into memory first.
func TestNoBodyWithoutToken(t *testing.T) {
	e := newEnv(t)
	cases := map[string]struct {
		reason string
		req    string
		want   string
	}{
		"LargeContentLength": {
			reason: "An 11 MB body without a token is a 401, not a 413: the token is checked first.",
			req:    "POST /set/k HTTP/1.1\r\nHost: h\r\nContent-Length: 11534336\r\n\r\n",
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"SmallContentLength": {
			reason: "A 1 MB body without a token is refused before it is sent in full.",
			req:    "POST /set/k HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n",
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"ExpectContinue": {
			reason: "A client asking whether to send its body is told 401 at once, not 100 Continue.",
			req:    "POST /set/k HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"ExpectContinueTooLarge": {
			reason: "A client with a token asking whether to send 11 MB is told 413 at once.",
			req:    "POST /set/k HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + adminToken() + "\r\nExpect: 100-continue\r\nContent-Length: 11534336\r\n\r\n",
			want:   "HTTP/1.1 413 Request Entity Too Large",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := e.raw(t, tc.req, 2*time.Second)
			status, _, _ := strings.Cut(got, "\r\n")
			_, body, _ := strings.Cut(got, "\r\n\r\n")
			if status != tc.want || !isJSONError(body) {
				t.Errorf("%s\nwant %q with a JSON error, got %q", tc.reason, tc.want, trunc(got))
			}
		})
	}
	if e.exists(t, "k") {
		t.Errorf("a refused request wrote its key")
	}
}

// TestIdleConnectionsHoldNoLargeBuffers: a keep-alive connection that once
// carried a large reply or body must not keep its buffer while it idles
// (fasthttp's default kept both for the connection's life: 20 connections
// after one 9 MiB GET each held 180 MiB).
func TestIdleConnectionsHoldNoLargeBuffers(t *testing.T) {
	e := newEnv(t)
	const conns, size = 20, 9 << 20
	if err := e.admin.Set(context.Background(), "big", strings.Repeat("x", size), 0).Err(); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("y"), size)
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	held := heapAfter(func() {
		for i := range conns {
			c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
			br := bufio.NewReader(c)
			for _, req := range []string{
				fmt.Sprintf("GET /get/big HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", adminToken()),
				fmt.Sprintf("POST /set/big%d HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", i, adminToken(), size, body),
			} {
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Fatalf("want 200, got %d", res.StatusCode)
				}
			}
		}
	})
	if held > conns*size/4 {
		t.Errorf("%d idle connections, each after a %d MiB reply and body, hold %d MiB", conns, size>>20, held>>20)
	}
}

// A captureLog keeps what is logged; fasthttp's workers log concurrently.
type captureLog struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l captureLog) Info(msg string, kv ...any)         { l.add("INFO", msg, kv) }
func (l captureLog) Debug(msg string, kv ...any)        { l.add("DEBUG", msg, kv) }
func (l captureLog) WithValues(_ ...any) logging.Logger { return l }

func (l captureLog) add(level, msg string, kv []any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.b, level, msg, kv)
}

func (l captureLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoTokenInLogs: malformed requests that carry a token make the HTTP
// server log at debug level; no line may quote the token.
func TestNoTokenInLogs(t *testing.T) {
	buf := captureLog{mu: &sync.Mutex{}, b: &bytes.Buffer{}}
	e := newEnv(t, withConfig(Config{Log: buf, ReadHeaderTimeout: time.Second}))
	secret := "SECRETSECRET"
	tok := e.user(t, "app", secret, "~*", "&*", "+@all")
	for _, r := range []string{
		"GET /get/k?_token=" + tok + " HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n",
		"GET /get/k HTTP/1.1\r\nHost: h\r\nAuthorization Bearer " + tok + "\r\n\r\n",
		"GET /get/k HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + tok + "\x01\r\n\r\n",
		"GET /get/k HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + tok + "\r\nX: \x00\r\n\r\n",
		"GET /get/k HTTP/1.1\r\nHost: " + tok + ":x:y\r\n\r\n",
		"POST /get/k HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + tok + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET /get/k?_token=" + tok + "&" + strings.Repeat("a", 20000) + " HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		e.raw(t, r, 1500*time.Millisecond)
	}
	if !strings.Contains(buf.String(), "DEBUG") {
		t.Fatalf("the malformed requests logged nothing: the test proves nothing")
	}
	if strings.Contains(buf.String(), secret) || strings.Contains(buf.String(), tok) {
		t.Errorf("a log line quotes the token:\n%s", buf.String())
	}
}

// TestSlowHeaders: a client trickling its header is cut off after
// ReadHeaderTimeout, whatever ReadTimeout allows a body.
func TestSlowHeaders(t *testing.T) {
	e := newEnv(t, withConfig(Config{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Minute}))
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /echo/x HTTP/1.1\r\n")
	for range 30 {
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(c, "X: y\r\n"); err != nil {
			return
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if b, err := io.ReadAll(c); err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Errorf("a header trickled for 3s with a 500ms header timeout: want 408 and the connection closed, got %q %v", trunc(string(b)), err)
	}
}

// TestSubscribeOtherClients: HEAD must not start a stream (it would get a
// body), and an HTTP/1.0 client gets a stream it can read: not chunked.
func TestSubscribeOtherClients(t *testing.T) {
	e := newEnv(t)
	tok := e.user(t, "app", "k", "~*", "&*", "+@all")
	got := e.raw(t, "HEAD /subscribe/chat HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "+tok+"\r\n\r\n", time.Second)
	if status, _, _ := strings.Cut(got, "\r\n"); status != "HTTP/1.1 405 Method Not Allowed" {
		t.Errorf("HEAD /subscribe/chat: want 405, got %q", trunc(got))
	}
	got = e.raw(t, "POST /subscribe/chat HTTP/1.0\r\nAuthorization: Bearer "+tok+"\r\n\r\n", time.Second)
	head, body, _ := strings.Cut(got, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200 OK") || strings.Contains(head, "chunked") || body != "data: subscribe,chat,1\n\n" {
		t.Errorf("HTTP/1.0 POST /subscribe/chat: want an unchunked 200 stream, got %q", trunc(got))
	}
}

// TestStuckSubscriber: a subscriber that stops reading without closing
// must not hold its stream, Redis connection and slot for ever: the
// gateway's shutdown ends it within WriteTimeout.
func TestStuckSubscriber(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxSubscriptions: 1, WriteTimeout: time.Second}))
	tok := e.user(t, "app", "k", "~*", "&*", "+@all")
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "POST /subscribe/chat HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	testenv.Eventually(t, 2*time.Second, "subscribed", func() error {
		if n := e.admin.PubSubNumSub(context.Background(), "chat").Val()["chat"]; n != 1 {
			return fmt.Errorf("%d subscribers", n)
		}
		return nil
	})
	// More than the sockets buffer, less than Redis's client output
	// limit for subscribers (32 MB): the stream blocks in a write.
	msg := strings.Repeat("m", 1<<20)
	for range 12 {
		e.admin.Publish(context.Background(), "chat", msg)
	}
	time.Sleep(500 * time.Millisecond)
	e.srv.CloseStreams()
	testenv.Eventually(t, 5*time.Second, "the stream's slot free", func() error {
		if n := len(e.srv.subs); n != 0 {
			return fmt.Errorf("%d slots taken", n)
		}
		return nil
	})
}

// TestPanicIsAnError: fasthttp recovers no panic, so a bug hit by one
// request would stop the gateway for every client; it must be that
// request's 500 instead.
func TestPanicIsAnError(t *testing.T) {
	e := newEnv(t)
	// A Server without its Redis panics on the first request that needs it.
	broken := &env{url: serve(t, NewServer(nil, Config{}))}
	for range 2 {
		got := broken.cmd(t, adminToken(), "PING")
		if got.Status != http.StatusInternalServerError || !isJSONError(got.Body) {
			t.Errorf("a request that panics: want 500 with a JSON error, got %d %s", got.Status, got.Body)
		}
	}
	if got := e.cmd(t, adminToken(), "PING"); got.Body != `{"result":"PONG"}` {
		t.Errorf("after a panic: got %d %s", got.Status, got.Body)
	}
}

// TestExpectContinueAfterRedisAccepts: a client asking whether to send its
// body ("Expect: 100-continue") is told to only once Redis accepted its
// token. A well-formed token is not a valid one: a forged one got 100
// Continue, and its body was read (and dropped) before the 401. It gets its
// final status at once now, and its connection closes without its body
// having been sent.
func TestExpectContinueAfterRedisAccepts(t *testing.T) {
	e := newEnv(t)
	b := e.user(t, "b", "kb", "~b:*", "+@all")
	const body = `["SET","b:k","v"]`
	cases := map[string]struct {
		reason string
		token  string
		want   string
	}{
		"WrongKey": {
			reason: "A token naming a real user with a wrong key gets 401, not 100 Continue.",
			token:  contract.Token("b", "wrong"),
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"UnknownUser": {
			reason: "A token naming no user gets 401, not 100 Continue.",
			token:  contract.Token("nobody", "kb"),
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"Accepted": {
			reason: "A token Redis accepts is asked for its body, which then runs.",
			token:  b,
			want:   "HTTP/1.1 100 Continue",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", tc.token, len(body)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			status, _ := br.ReadString('\n')
			if got := strings.TrimSpace(status); got != tc.want {
				t.Fatalf("%s\nthe first status line: want %q, got %q", tc.reason, tc.want, got)
			}
			if tc.want != "HTTP/1.1 100 Continue" {
				// The final answer, then the connection's end: the
				// body was never sent.
				rest, err := io.ReadAll(br)
				if _, got, _ := strings.Cut(string(rest), "\r\n\r\n"); err != nil || !isJSONError(got) {
					t.Errorf("%s\nwant a JSON error and the connection closed, got %q %v", tc.reason, trunc(string(rest)), err)
				}
				return
			}
			if _, err := br.ReadString('\n'); err != nil { // The empty line after 100 Continue.
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, body); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK || string(got) != `{"result":"OK"}` {
				t.Errorf("%s\nwant 200 {\"result\":\"OK\"}, got %d %s", tc.reason, res.StatusCode, got)
			}
		})
	}
}
