package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestBodiesShareMemory: request bodies are read within the memory for
// requests in flight, an identity's share of it at most. While one token's
// large body is arriving, the same token's next large body is refused
// unread (503, Retry-After, nothing ran), another token's is served, and
// once the first body is answered its memory is free again.
func TestBodiesShareMemory(t *testing.T) {
	// 8 MiB for requests in flight: 2 MiB for each identity.
	e := newEnv(t, withLimits(Limits{MaxReplyBytes: 512 << 10, MaxArrayLen: 1 << 20, MaxDepth: 32}), withRedisOptions(WithMaxMemory(8<<20)))
	a := e.user(t, "a", "ka", "~a:*", "+@all")
	b := e.user(t, "b", "kb", "~b:*", "+@all")
	set := func(key string, size int) []byte {
		return fmt.Appendf(nil, `["SET",%q,%q]`, key, strings.Repeat("x", size))
	}

	// a's first body: 1.5 MiB, all but its last byte sent, held.
	held := set("a:held", 1536<<10)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", a, len(held), held[:len(held)-1]); err != nil {
		t.Fatal(err)
	}

	var refused response
	deadline := time.Now().Add(10 * time.Second)
	for refused = e.do(t, http.MethodPost, "/", a, set("a:next", 1<<20)); refused.Status == http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		refused = e.do(t, http.MethodPost, "/", a, set("a:next", 1<<20))
	}
	if refused.Status != http.StatusServiceUnavailable || refused.Header.Get("Retry-After") == "" || !isJSONError(refused.Body) {
		t.Errorf("a's second 1 MiB body while its 1.5 MiB body arrives (2 MiB share): want 503 with Retry-After and a JSON error, got %d %q %q", refused.Status, refused.Header.Get("Retry-After"), trunc(refused.Body))
	}
	if got := e.do(t, http.MethodPost, "/", b, set("b:k", 1<<20)); got.Status != http.StatusOK {
		t.Errorf("b's 1 MiB body while a's share is taken: want 200, got %d %q", got.Status, trunc(got.Body))
	}

	if _, err := c.Write(held[len(held)-1:]); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(c, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("a's held body once complete: want 200, got %q %v", head, err)
	}
	if got := e.do(t, http.MethodPost, "/", a, set("a:after", 1<<20)); got.Status != http.StatusOK {
		t.Errorf("a's 1 MiB body once its held one was answered: want 200 (memory given back), got %d %q", got.Status, trunc(got.Body))
	}
	if !e.exists(t, "a:held") || !e.exists(t, "b:k") || !e.exists(t, "a:after") {
		t.Errorf("an admitted body's SET did not run")
	}
}

// TestSlowBody: a body that does not arrive within ReadTimeout is answered
// 408, and nothing runs: one that stops within what the server reads ahead
// (8 KiB) and one that stops after it, read by the handler.
func TestSlowBody(t *testing.T) {
	e := newEnv(t, withConfig(Config{ReadTimeout: 500 * time.Millisecond}))
	for _, sent := range []int{10, 20 << 10} {
		req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\n[\"SET\",\"slow\",\"%s", adminToken(), strings.Repeat("s", sent))
		got := e.raw(t, req, 5*time.Second)
		if status, _, _ := strings.Cut(got, "\r\n"); status != "HTTP/1.1 408 Request Timeout" {
			t.Errorf("a body that stops arriving after %d bytes: want 408, got %q", sent, trunc(got))
		}
	}
	if e.exists(t, "slow") {
		t.Errorf("a request whose body never arrived ran")
	}
}

// TestChunkedBody: a chunked body within MaxRequestBytes is read whole.
func TestChunkedBody(t *testing.T) {
	e := newEnv(t)
	v := strings.Repeat("c", 3<<20)
	req, err := http.NewRequest(http.MethodPost, e.url+"/", struct{ io.Reader }{strings.NewReader(`["SET","chunked","` + v + `"]`)})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("a chunked 3 MiB SET: want 200, got %d", res.StatusCode)
	}
	if e.get(t, "chunked") != v {
		t.Errorf("the chunked body's value was not written whole")
	}
}

// TestForgedTokensTakeNoMemory: anyone can make well-formed tokens, and
// a body is charged to its identity's share before Redis runs anything.
// Four forged tokens each sending two 1 MiB bodies, held, took the whole
// memory for requests in flight (four shares), and every other token's
// requests got 503. A body of an identity Redis does not accept is
// refused unread (401) instead, and another token is served.
func TestForgedTokensTakeNoMemory(t *testing.T) {
	// 8 MiB for requests in flight: 2 MiB for each identity.
	e := newEnv(t, withLimits(Limits{MaxReplyBytes: 512 << 10, MaxArrayLen: 1 << 20, MaxDepth: 32}), withRedisOptions(WithMaxMemory(8<<20)))
	b := e.user(t, "b", "kb", "~b:*", "+@all")
	const conns = 8
	statuses := make(chan string, conns)
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		forged := contract.Token(fmt.Sprintf("forged%d", i/2), "key")
		if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n[\"SET\",\"forged\",\"%s", forged, 1<<20, strings.Repeat("x", 16<<10)); err != nil {
			t.Fatal(err)
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			status, _ := bufio.NewReader(c).ReadString('\n')
			statuses <- strings.TrimSpace(status)
		}()
	}
	// Until every forged body is answered, or (as before) they hold the
	// whole memory.
	var got []string
	for len(got) < conns {
		select {
		case s := <-statuses:
			got = append(got, s)
			continue
		case <-time.After(10 * time.Millisecond):
		}
		e.rds.mem.mu.Lock()
		full := e.rds.mem.used == e.rds.mem.max
		e.rds.mem.mu.Unlock()
		if full {
			break
		}
	}
	if r := e.do(t, http.MethodPost, "/", b, []byte(`["SET","b:k","1"]`)); r.Status != http.StatusOK {
		t.Errorf("b's request while forged tokens send bodies: want 200, got %d %s", r.Status, trunc(r.Body))
	}
	want := slices.Repeat([]string{"HTTP/1.1 401 Unauthorized"}, conns)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the forged tokens' bodies: -want, +got:\n%s", diff)
	}
	if e.exists(t, "forged") {
		t.Errorf("a forged token's request ran")
	}
}

// TestBodyBufferCharged: a body is charged the memory of the buffer it is
// read into. A body of 8 KiB and a byte, held, took a 1 MiB buffer the
// pool kept from an earlier body and was charged 8 KiB: twenty of them
// held 16 MiB charged 160 KiB (a token's share, 64 MiB by default, was
// 8 GiB of such buffers).
func TestBodyBufferCharged(t *testing.T) {
	e := newEnv(t)
	addr := strings.TrimPrefix(e.url, "http://")
	notJSON := bytes.Repeat([]byte("x"), 1000000)
	used := func() int64 {
		e.rds.mem.mu.Lock()
		defer e.rds.mem.mu.Unlock()
		return e.rds.mem.used
	}
	const n = 20
	var held []net.Conn
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	grew := heapAfter(func() {
		for range n {
			// A 1 MB body (not JSON: 400 at once) leaves its buffer in
			// the pool...
			if r := e.do(t, http.MethodPost, "/", adminToken(), notJSON); r.Status != http.StatusBadRequest {
				t.Fatalf("a 1 MB body that is not JSON: want 400, got %d", r.Status)
			}
			// ... for the next body, held once charged.
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			before := used()
			if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", adminToken(), 8<<10+1, bytes.Repeat([]byte("y"), 8<<10)); err != nil {
				t.Fatal(err)
			}
			for used() == before {
				time.Sleep(time.Millisecond)
			}
		}
	})
	// Each connection holds its own buffers besides (fasthttp's reader,
	// writer and read-ahead: about 30 KiB).
	if charged, most := used(), used()+n*64<<10; grew > most {
		t.Errorf("%d held bodies charged %d KiB held %d KiB: want at most %d KiB", n, charged>>10, grew>>10, most>>10)
	}
}

// TestBodyDesync: a request whose body the gateway does not read (no
// token, a forged one, a refused method, a conflicting framing) never has
// its body parsed as the next request on its connection: the request
// smuggled in it does not run, and the connection answers once.
func TestBodyDesync(t *testing.T) {
	e := newEnv(t)
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }
	withCL := func(head, body string) string {
		return fmt.Sprintf("%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
	}
	forged := contract.Token("nobody", "nokey")
	cases := map[string]struct {
		reason string
		req    func(smuggled string) string
		want   string
	}{
		"NoToken": {
			reason: "A body without a token is never read: the connection closes after the 401.",
			req:    func(s string) string { return withCL("POST /get/x HTTP/1.1\r\nHost: h\r\n", s) },
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"NoTokenChunked": {
			reason: "Nor a chunked one.",
			req: func(s string) string {
				return "POST /get/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(s)
			},
			want: "HTTP/1.1 401 Unauthorized",
		},
		"NoTokenExpectContinue": {
			reason: "Nor one sent without waiting for 100 Continue.",
			req:    func(s string) string { return withCL("POST /get/x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n", s) },
			want:   "HTTP/1.1 401 Unauthorized",
		},
		"NoTokenHTTP10": {
			reason: "Nor one of HTTP/1.0 asking to keep its connection.",
			req: func(s string) string {
				return withCL("POST /get/x HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n", s)
			},
			want: "HTTP/1.1 401 Unauthorized",
		},
		"ForgedToken": {
			reason: "A well-formed token Redis refuses: the body is refused unread.",
			req: func(s string) string {
				return withCL("POST /get/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "+forged+"\r\n", s)
			},
			want: "HTTP/1.1 401 Unauthorized",
		},
		"TokenInFragment": {
			reason: "A token after '#' is no token (the URI's query ends there): the body is refused unread.",
			req: func(s string) string {
				return withCL("POST /get/x#?_token="+adminToken()+" HTTP/1.1\r\nHost: h\r\n", s)
			},
			want: "HTTP/1.1 401 Unauthorized",
		},
		"MethodNotAllowed": {
			reason: "A refused method's body is skipped.",
			req: func(s string) string {
				return withCL("DELETE /get/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "+adminToken()+"\r\n", s)
			},
			want: "HTTP/1.1 405 Method Not Allowed",
		},
		"ContentLengthAndChunked": {
			reason: "Both framings: chunked wins, never Content-Length (the chunk is GET's second argument).",
			req: func(s string) string {
				return "POST /get/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + adminToken() + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(s)
			},
			want: "HTTP/1.1 400 Bad Request",
		},
		"ContentLengthAndChunkedNoToken": {
			reason: "Both framings without a token: nothing is read.",
			req: func(s string) string {
				return "POST /get/x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(s)
			},
			want: "HTTP/1.1 401 Unauthorized",
		},
		"TwoContentLengths": {
			reason: "Two Content-Lengths are a 400.",
			req: func(s string) string {
				return withCL("POST /get/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "+adminToken()+"\r\nContent-Length: 0\r\n", s)
			},
			want: "HTTP/1.1 400 Bad Request",
		},
		"UnknownTransferEncoding": {
			reason: "A transfer coding other than chunked is a 400.",
			req: func(s string) string {
				return "POST /get/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + adminToken() + "\r\nTransfer-Encoding: xchunked\r\n\r\n" + chunk(s)
			},
			want: "HTTP/1.1 400 Bad Request",
		},
	}
	i := 0
	for name, tc := range cases {
		i++
		key := fmt.Sprintf("smuggled%d", i)
		t.Run(name, func(t *testing.T) {
			got := e.raw(t, tc.req(fmt.Sprintf("GET /set/%s/1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", key, adminToken())), time.Second)
			status, _, _ := strings.Cut(got, "\r\n")
			if status != tc.want || strings.Count(got, "HTTP/1.1 ") != 1 {
				t.Errorf("%s\nwant one response, %q, got %q", tc.reason, tc.want, trunc(got))
			}
			if e.exists(t, key) {
				t.Errorf("%s\nthe request smuggled in the body ran", tc.reason)
			}
		})
	}
}

// TestTokenBeforeFragment: a token in the query before a fragment is the
// request's token when its body is read too. The body of
// "POST /set/k?_token=T#x" was dropped unread (its token was looked for
// up to the end of the URI, fragment included) and SET ran without its
// value.
func TestTokenBeforeFragment(t *testing.T) {
	e := newEnv(t)
	got := e.raw(t, fmt.Sprintf("POST /set/frag?_token=%s#x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nvalue", adminToken()), 5*time.Second)
	if status, _, _ := strings.Cut(got, "\r\n"); status != "HTTP/1.1 200 OK" || e.get(t, "frag") != "value" {
		t.Errorf("a token before a fragment, a body: want 200 and the body SET, got %q and %q", trunc(got), e.get(t, "frag"))
	}
}

// TestBodyMemoryGivenBack: a body's memory is given back on every path a
// request ends by: answered, refused after its body was read (400, 413
// chunked), a client leaving mid-body or before reading a streamed reply,
// a body that stops arriving (408), a subscription with a body, Expect:
// 100-continue; a leak would refuse the identity's bodies for good.
func TestBodyMemoryGivenBack(t *testing.T) {
	e := newEnv(t, withConfig(Config{ReadTimeout: 300 * time.Millisecond, MaxRequestBytes: 2 << 20}), withRedisOptions(WithMaxMemory(64<<20)))
	if err := e.admin.Set(t.Context(), "big", strings.Repeat("v", 1<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	head := func(method, path, framing string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n%s\r\n", method, path, adminToken(), framing)
	}
	x := strings.Repeat("x", 100000)
	chunks := strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", len(x), x), 30) + "0\r\n\r\n"
	cases := map[string]struct {
		req  string
		read bool
	}{
		"LeavesMidBody":          {req: head("POST", "/", "Content-Length: 1000000\r\n") + x},
		"NotJSON":                {req: head("POST", "/", "Content-Length: 100000\r\nConnection: close\r\n") + x, read: true},
		"ChunkedTooLarge":        {req: head("POST", "/", "Transfer-Encoding: chunked\r\n") + chunks, read: true},
		"StopsArriving":          {req: head("POST", "/", "Content-Length: 200000\r\n") + x, read: true},
		"ExpectContinue":         {req: head("POST", "/", "Expect: 100-continue\r\nContent-Length: 100000\r\nConnection: close\r\n") + x, read: true},
		"Subscription":           {req: head("POST", "/subscribe/ch", "Content-Length: 100000\r\n") + x},
		"LeavesStreamedReply":    {req: head("POST", "/get/big", "Content-Length: 1\r\n") + "x"},
		"PipelinedAfterStreamed": {req: head("GET", "/get/big", "") + head("POST", "/", "Content-Length: 100000\r\n") + x},
	}
	for name, tc := range cases {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tc.read {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(io.Discard, c)
		}
		_ = c.Close()
	}
	testenv.Eventually(t, 20*time.Second, "every body's memory given back", func() error {
		e.rds.mem.mu.Lock()
		defer e.rds.mem.mu.Unlock()
		if e.rds.mem.used != 0 {
			return fmt.Errorf("%d bytes still held", e.rds.mem.used)
		}
		return nil
	})
}
