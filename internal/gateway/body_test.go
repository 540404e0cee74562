package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
