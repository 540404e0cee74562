package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// clientID returns the Redis client id of the one connection of user whose
// CLIENT LIST line contains flag (e.g. "flags=P" for a subscriber).
func (e *env) clientID(t *testing.T, user, contains string) int64 {
	t.Helper()
	list, err := e.admin.Do(context.Background(), "CLIENT", "LIST").Text()
	if err != nil {
		t.Fatalf("cannot CLIENT LIST: %v", err)
	}
	for line := range strings.SplitSeq(list, "\n") {
		if strings.Contains(line, " user="+user+" ") && strings.Contains(line, contains) {
			f := strings.Fields(line)
			id, _ := strconv.ParseInt(strings.TrimPrefix(f[0], "id="), 10, 64)
			return id
		}
	}
	t.Fatalf("no client of user %q with %q in:\n%s", user, contains, list)
	return 0
}

// An attacker redirects client-side caching invalidations (CLIENT TRACKING
// ... REDIRECT) to another identity's subscriber connection: the victim's
// stream must not receive messages it did not subscribe to.
func TestAttackTrackingRedirectIntoVictimStream(t *testing.T) {
	e := newEnv(t)
	a := e.user(t, "app-a", "ka", "~a:*", "&a:*", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "&b:*", "+@all", "-@dangerous", "-@scripting")
	sub := e.stream(t, "/subscribe/b:ch", b)
	if sub.status != http.StatusOK {
		t.Fatalf("victim subscribe: %d", sub.status)
	}
	if got := next(t, sub.events); got != "subscribe,b:ch,1" {
		t.Fatalf("victim confirmation: %q", got)
	}
	id := e.clientID(t, "app-b", "flags=P")
	r := e.do(t, http.MethodPost, "/pipeline", a, []byte(`[["CLIENT","TRACKING","ON","REDIRECT","`+strconv.FormatInt(id, 10)+`","BCAST"],["SET","a:x","1"]]`))
	if r.Status != http.StatusBadRequest {
		t.Errorf("attacker's CLIENT TRACKING REDIRECT: want 400, got %d %s", r.Status, r.Body)
	}
	// The victim's own publish is the next event it must see.
	if r := e.do(t, http.MethodPost, "/publish/b:ch/mine", b, nil); r.Status != http.StatusOK {
		t.Fatalf("victim publish: %d %s", r.Status, r.Body)
	}
	if got := next(t, sub.events); got != "message,b:ch,mine" {
		t.Errorf("victim's stream: want its own message next, got %q", got)
	}
}

// Client-side caching over the gateway's RESP2 connections only ever sends
// invalidations to another connection: refused in every form, in a
// pipeline and a transaction too.
func TestAttackTrackingRefused(t *testing.T) {
	e := newEnv(t)
	a := e.user(t, "app-a", "ka", "~a:*", "&a:*", "+@all", "-@dangerous", "-@scripting")
	for _, c := range []struct{ reason, path, body string }{
		{"BCAST to a connection", "/", `["CLIENT","TRACKING","ON","REDIRECT","1","BCAST"]`},
		{"lower case, in a pipeline", "/pipeline", `[["SET","a:x","1"],["client","tracking","on"]]`},
		{"in a transaction", "/multi-exec", `[["CLIENT","Tracking","ON","BCAST","PREFIX","b:"]]`},
		{"caching", "/", `["CLIENT","CACHING","YES"]`},
	} {
		r := e.do(t, http.MethodPost, c.path, a, []byte(c.body))
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "is not supported over HTTP") {
			t.Errorf("%s: want 400 not supported, got %d %s", c.reason, r.Status, r.Body)
		}
	}
}

// sseEvents reads a /subscribe stream as the SSE specification reads it
// (a line ends at CRLF, LF or CR, as in a browser's EventSource) and sends
// the data of each event.
func sseEvents(t *testing.T, e *env, path, token string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+path, strings.NewReader("[]"))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		var line, data []byte
		var last byte
		buf := make([]byte, 4096)
		for {
			n, err := res.Body.Read(buf)
			for _, c := range buf[:n] {
				if c == '\n' && last == '\r' {
					last = c
					continue
				}
				last = c
				if c != '\r' && c != '\n' {
					line = append(line, c)
					continue
				}
				switch {
				case len(line) == 0:
					if data != nil {
						ch <- string(data)
						data = nil
					}
				case strings.HasPrefix(string(line), "data: "):
					if data != nil {
						data = append(data, '\n')
					}
					data = append(data, line[len("data: "):]...)
				}
				line = line[:0]
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

// A publisher on a channel two keys share must not forge, in the other
// key's stream, an event of a channel only that key can publish to: a lone
// CR ends an SSE line.
func TestAttackSSELineBreakForgesEvent(t *testing.T) {
	e := newEnv(t)
	a := e.user(t, "app-a", "ka", "~a:*", "&news", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "&news", "&b:private", "+@all", "-@dangerous", "-@scripting")
	events := sseEvents(t, e, "/subscribe/news/b:private", b)
	for _, want := range []string{"subscribe,news,1", "subscribe,b:private,2"} {
		if got := next(t, events); got != want {
			t.Fatalf("victim confirmation: want %q, got %q", want, got)
		}
	}
	for _, forged := range []string{"x\r\rdata: message,b:private,forged", "x\r\n\r\ndata: message,b:private,forged2"} {
		if r := e.cmd(t, a, "PUBLISH", "news", forged); r.Status != http.StatusOK {
			t.Fatalf("attacker publish: %d %s", r.Status, r.Body)
		}
	}
	if r := e.cmd(t, b, "PUBLISH", "b:private", "end"); r.Status != http.StatusOK {
		t.Fatalf("victim publish: %d %s", r.Status, r.Body)
	}
	for {
		got := next(t, events)
		if strings.HasPrefix(got, "message,b:private,forged") {
			t.Errorf("victim's stream has a forged event %q", got)
		}
		if got == "message,b:private,end" || strings.HasPrefix(got, "<") {
			break
		}
	}
}

// A key allowed scripting returns, from Lua, replies a RESP2 connection
// should never carry (RESP3 types after redis.setresp(3), status and error
// replies with line breaks, deep nesting, a reply above the budget): each
// answers 200 or a JSON error, and another key's next requests, on the same
// pooled connections, get their own replies.
func TestAttackLuaReplies(t *testing.T) {
	l := DefaultLimits
	l.MaxReplyBytes = 1 << 20
	e := newEnv(t, withPoolSize(1), withLimits(l))
	a := e.user(t, "app-a", "ka", "~a:*", "+@all", "-@dangerous")
	b := e.user(t, "app-b", "kb", "~b:*", "+@all", "-@dangerous", "-@scripting")
	if r := e.cmd(t, b, "SET", "b:k", "victim"); r.Status != http.StatusOK {
		t.Fatalf("victim SET: %d %s", r.Status, r.Body)
	}
	for _, script := range []string{
		`redis.setresp(3); return {map={a=1}}`,
		`redis.setresp(3); return {double=1.5}`,
		`redis.setresp(3); return {big_number="123456789012345678901234567890"}`,
		`redis.setresp(3); return {verbatim_string={format="txt", string="x"}}`,
		`redis.setresp(3); return {set={a=true}}`,
		`redis.setresp(3); return redis.call("HGETALL", "a:h")`,
		`return redis.status_reply("OK\r\n$6\r\nforged")`,
		`return redis.error_reply("ERR x\r\n$6\r\nforged")`,
		`local t = {} local c = t for i = 1, 5000 do c[1] = {} c = c[1] end return t`,
		`return string.rep("x", 2 * 1024 * 1024)`,
		`return {1, string.rep("x", 2 * 1024 * 1024), 3}`,
	} {
		r := e.cmd(t, a, "EVAL", script, "0")
		if r.Status != http.StatusOK && !isJSONError(r.Body) {
			t.Errorf("%s: want 200 or a JSON error, got %d %.200s", script, r.Status, r.Body)
		}
		if got := e.cmd(t, b, "GET", "b:k"); got.Body != `{"result":"victim"}` {
			t.Errorf("after %s: victim's GET got %d %.200s", script, got.Status, got.Body)
		}
	}
}

// A subscription pipelined behind another request on one connection, whose
// client resets the connection at once: the gateway subscribes, then
// fails to send the earlier response it held back for the pipeline, and
// the HTTP server never hands the connection to the stream. The stream's
// slots and its Redis connection must still be given back: with the only
// slot of the gateway held, nobody else could subscribe again.
func TestAttackPipelinedSubscribeReset(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxSubscriptions: 1}))
	a := e.user(t, "app-a", "ka", "~a:*", "&a:*", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "&b:*", "+@all", "-@dangerous", "-@scripting")
	addr := strings.TrimPrefix(e.url, "http://")
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		req := "GET /ping HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + a + "\r\n\r\n" +
			"POST /subscribe/a:ch HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer " + a + "\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		// A reset: the gateway still reads both requests, its writes fail.
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	testenv.Eventually(t, 10*time.Second, "the victim subscribing", func() error {
		if got := e.refused(t, "/subscribe/b:ch", b); got.Status != http.StatusOK {
			return fmt.Errorf("%d %s", got.Status, got.Body)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "the attacker's Redis subscriptions closed", func() error {
		list, err := e.admin.Do(context.Background(), "CLIENT", "LIST").Text()
		if err != nil {
			return err
		}
		n := 0
		for line := range strings.SplitSeq(list, "\n") {
			if strings.Contains(line, " user=app-a ") && strings.Contains(line, " flags=P ") {
				n++
			}
		}
		if n > 0 {
			return fmt.Errorf("%d subscribed connections of app-a open", n)
		}
		return nil
	})
}

// A key allowed scripting forges a replica's refusal (READONLY) and leaves
// its connection in a transaction, where the HELLO that checks the
// server's role is queued rather than answered: an answer that is no
// role must not count as "no master". Before, it ended the pool's
// generation: every idle connection, other keys' too, was closed, which a
// key could repeat twice a second.
func TestAttackForgedRefusalInTransaction(t *testing.T) {
	e := newEnv(t)
	a := e.user(t, "app-a", "ka", "~a:*", "+@all", "-@dangerous")
	b := e.user(t, "app-b", "kb", "~b:*", "+@all", "-@dangerous", "-@scripting")
	if r := e.cmd(t, b, "SET", "b:k", "v"); r.Status != http.StatusOK {
		t.Fatalf("victim SET: %d %s", r.Status, r.Body)
	}
	r := e.do(t, http.MethodPost, "/pipeline", a, []byte(`[["EVAL","return redis.error_reply('READONLY forged')","0"],["MULTI"]]`))
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "READONLY forged") {
		t.Fatalf("attacker's pipeline: %d %s", r.Status, r.Body)
	}
	if gen := e.rds.pool.generation(); gen != 0 {
		t.Errorf("another key's forged refusal ended the pool's generation (%d): every idle connection closed", gen)
	}
	if r := e.cmd(t, b, "GET", "b:k"); r.Body != `{"result":"v"}` {
		t.Errorf("victim GET: %d %s", r.Status, r.Body)
	}
}

// Connections that hold no request in progress (never sent one, idle
// between requests, or still sending a request's line and headers) yield
// their slot to a new connection when --max-connections are open: before,
// anyone, no token needed, held every slot with connections that sent
// nothing (or a byte at a time), opened again every --read-header-timeout,
// and every client got 503.
func TestAttackIdleConnectionsYield(t *testing.T) {
	const maxConns = 4
	e := newEnv(t, withConfig(Config{MaxConnections: maxConns, Metrics: NewMetrics(prometheus.NewRegistry())}))
	if err := e.admin.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(e.url, "http://")
	var held []*httpConn
	for i := range 3 * maxConns {
		c := dialHTTP(t, addr)
		switch i % 3 {
		case 1:
			// Half a request line.
			_, _ = io.WriteString(c.c, "GET /get/k HT")
		case 2:
			// Served once, then idle.
			c.getOK(t, fmt.Sprintf("connection %d", i))
		}
		held = append(held, c)
	}
	for i := range maxConns {
		c := dialHTTP(t, addr)
		if body := c.getOK(t, fmt.Sprintf("a new connection %d with %d held idle", i, len(held))); body != `{"result":"v"}` {
			t.Errorf("a new connection %d with %d held idle: want {\"result\":\"v\"}, got %q", i, len(held), body)
		}
	}
	// Every connection past the bound evicted one, and none was refused.
	m := e.srv.cfg.Metrics
	if got := [2]float64{testutil.ToFloat64(m.evicted), testutil.ToFloat64(m.refused)}; got != [2]float64{3 * maxConns, 0} {
		t.Errorf("connections evicted and refused: want [%d 0], got %v", 3*maxConns, got)
	}
}

// One token's requests in progress hold at most a quarter of
// --max-connections (here: connections stalled in a body, past what the
// HTTP server reads before the handler runs, of a token Redis accepted:
// busy, no eviction ends them): the others are answered 429 and closed,
// and another token's new connections are served.
func TestAttackSlowBodiesBounded(t *testing.T) {
	const maxConns = 8
	e := newEnv(t, withConfig(Config{MaxConnections: maxConns}))
	a := e.user(t, "app-a", "ka", "~a:*", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "+@all", "-@dangerous", "-@scripting")
	if r := e.cmd(t, a, "SET", "a:k", "v"); r.Status != http.StatusOK {
		t.Fatalf("attacker SET: %d %s", r.Status, r.Body)
	}
	addr := strings.TrimPrefix(e.url, "http://")
	refused := 0
	for i := range maxConns {
		c := dialHTTP(t, addr)
		// Past the 8 KiB the HTTP server reads before the handler runs.
		_, _ = fmt.Fprintf(c.c, "POST / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", a, 100<<10, strings.Repeat(" ", 9<<10))
		_ = c.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if res, err := http.ReadResponse(c.br, nil); err == nil {
			_ = res.Body.Close()
			if res.StatusCode != http.StatusTooManyRequests || !res.Close {
				t.Errorf("the attacker's stalled body %d: want 429 and the connection closed, got %d", i, res.StatusCode)
			}
			refused++
		}
	}
	if want := maxConns - maxConns/4; refused != want {
		t.Errorf("want %d of the attacker's %d stalled bodies refused, got %d", want, maxConns, refused)
	}
	for i := range maxConns / 2 {
		c := dialHTTP(t, addr)
		_, _ = fmt.Fprintf(c.c, "GET /ping HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", b)
		if status, body, err := c.read(); err != nil || status != http.StatusOK {
			t.Errorf("the victim's connection %d: want 200, got %d %q %v", i, status, body, err)
		}
	}
}

// One key's subscription streams whose clients read nothing must not
// grow Redis's memory: a message the gateway has not read waits in the
// subscriber's output buffer in Redis, which counts against maxmemory, so
// Redis evicted every other key (or refused every write) to hold one
// key's unread messages. The gateway reads every message at once, charged
// to the key's share of its memory, and ends a stream that cannot keep up.
func TestAttackUnreadStreamsEvictNothing(t *testing.T) {
	e := newEnv(t, withRedisOptions(WithMaxMemory(32<<20)))
	for _, c := range [][]any{{"CONFIG", "SET", "maxmemory", "24mb"}, {"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"}} {
		if err := e.admin.Do(context.Background(), c...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a := e.user(t, "app-a", "ka", "~a:*", "&a:*", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "&b:*", "+@all", "-@dangerous", "-@scripting")
	if r := e.cmd(t, b, "SET", "b:k", "victim"); r.Status != http.StatusOK {
		t.Fatalf("victim SET: %d %s", r.Status, r.Body)
	}
	addr := strings.TrimPrefix(e.url, "http://")
	for range 8 {
		c := dialHTTP(t, addr)
		_ = c.c.(*net.TCPConn).SetReadBuffer(4 << 10)
		_, _ = fmt.Fprintf(c.c, "POST /subscribe/a:ch HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n", a)
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(c.br, nil) //nolint:bodyclose // A stream: never read.
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("attacker's stream: %v", err)
		}
	}
	// Published by Redis's admin: the key's own bodies take its share.
	msg := strings.Repeat("x", 1<<20)
	for range 40 {
		if err := e.admin.Publish(context.Background(), "a:ch", msg).Err(); err != nil {
			t.Fatalf("PUBLISH: %v", err)
		}
	}
	if got := e.cmd(t, b, "GET", "b:k"); got.Body != `{"result":"victim"}` {
		t.Errorf("the victim's key after another key's unread messages: got %d %s", got.Status, got.Body)
	}
}

// A subscription names at most 64 channels (or patterns): Redis keeps
// each in memory counted against maxmemory, and with a 16 KiB path one
// key's streams subscribed to half a million channels (100 MiB of
// Redis's memory, others' keys evicted for it).
func TestAttackSubscriptionChannelsBounded(t *testing.T) {
	e := newEnv(t)
	a := e.user(t, "app-a", "ka", "~a:*", "&a:*", "+@all", "-@dangerous", "-@scripting")
	path := func(n int) string {
		var p strings.Builder
		p.WriteString("/subscribe")
		for i := range n {
			fmt.Fprintf(&p, "/a:%d", i)
		}
		return p.String()
	}
	want := `{"error":"ERR at most 64 channels or patterns in one subscription"}`
	if got := e.refused(t, path(65), a); got.Status != http.StatusBadRequest || got.Body != want {
		t.Errorf("a subscription to 65 channels: want 400 %s, got %d %s", want, got.Status, got.Body)
	}
	if got := e.refused(t, strings.Replace(path(65), "/subscribe", "/psubscribe", 1), a); got.Status != http.StatusBadRequest || got.Body != want {
		t.Errorf("a subscription to 65 patterns: want 400 %s, got %d %s", want, got.Status, got.Body)
	}
	if got := e.refused(t, path(64), a); got.Status != http.StatusOK {
		t.Errorf("a subscription to 64 channels: want a stream, got %d %s", got.Status, got.Body)
	}
}

// Requests of different tokens pipelined on one keep-alive connection (as
// a proxy's upstream connection carries them) carry nothing from one to
// the next: each runs as its own token, or as none, with its own encoding,
// and answers in order.
func TestAttackPipelinedTokens(t *testing.T) {
	e := newEnv(t)
	a := e.user(t, "app-a", "ka", "~a:*", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "+@all", "-@dangerous", "-@scripting")
	if r := e.cmd(t, b, "SET", "b:k", "victim"); r.Status != http.StatusOK {
		t.Fatalf("victim SET: %d %s", r.Status, r.Body)
	}
	forged := contract.Token("app-b", "kx")
	post := func(token, body string, header ...string) string {
		h := ""
		for i := 0; i+1 < len(header); i += 2 {
			h += header[i] + ": " + header[i+1] + "\r\n"
		}
		return fmt.Sprintf("POST / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n%sContent-Length: %d\r\n\r\n%s", token, h, len(body), body)
	}
	reqs := []struct{ req, want string }{
		{post(a, `["SELECT","1"]`), `{"result":"OK"}`},
		{post(a, `["GET","b:k"]`, "Upstash-Encoding", "base64"), `{"error":"NOPERM this user has no permissions to access one of the keys used as arguments"}`},
		{post(b, `["GET","b:k"]`), `{"result":"victim"}`},
		{post(forged, `["GET","b:k"]`), `{"error":"Unauthorized: missing, malformed or refused token"}`},
	}
	var all strings.Builder
	for _, r := range reqs {
		all.WriteString(r.req)
	}
	c := dialHTTP(t, strings.TrimPrefix(e.url, "http://"))
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, all.String()); err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		_, body, err := c.read()
		if err != nil || body != r.want {
			t.Errorf("pipelined response %d: want %s, got %s %v", i, r.want, body, err)
		}
	}
}

// A request answered without its body being read (here 405, with a token
// that is only well-formed) closes its connection: the HTTP server would
// otherwise read and drop the rest of the body, up to 256 KiB, for up to
// the read timeout, with the connection busy (after the handler, before
// the next request: no eviction ends it) and counted against no token.
// Such connections, a body trickled into each, held every slot.
func TestAttackUnreadBodyHoldsNoSlot(t *testing.T) {
	const maxConns = 4
	e := newEnv(t, withConfig(Config{MaxConnections: maxConns}))
	b := e.user(t, "app-b", "kb", "~b:*", "+@all", "-@dangerous", "-@scripting")
	forged := contract.Token("nobody", "x")
	addr := strings.TrimPrefix(e.url, "http://")
	for i := range maxConns {
		c := dialHTTP(t, addr)
		_, _ = fmt.Fprintf(c.c, "DELETE / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", forged, 200<<10, strings.Repeat(" ", 9<<10))
		if status, body, err := c.read(); err != nil || status != http.StatusMethodNotAllowed {
			t.Fatalf("the attacker's DELETE %d: want 405, got %d %q %v", i, status, body, err)
		}
	}
	for i := range maxConns {
		c := dialHTTP(t, addr)
		// A 429 is the victim's own quarter (one connection here): its
		// previous connection counts until the server has finished writing
		// the response the client already read. Anything else is the
		// attacker's doing and fails at once.
		testenv.Eventually(t, time.Minute, fmt.Sprintf("the victim's connection %d served", i), func() error {
			_, _ = fmt.Fprintf(c.c, "GET /ping HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", b)
			status, body, err := c.read()
			switch {
			case err == nil && status == http.StatusOK:
				return nil
			case err == nil && status == http.StatusTooManyRequests:
				return fmt.Errorf("429 %q", body)
			}
			t.Fatalf("the victim's connection %d: want 200, got %d %q %v", i, status, body, err)
			return nil
		})
	}
}

// A token's responses its client does not read keep their connections
// busy until written (up to --write-timeout): they count against the
// token's quarter of --max-connections like its requests in progress.
// Before, one key pipelining GETs of 60 KiB on every connection and reading
// nothing held every slot.
func TestAttackUnreadResponsesBounded(t *testing.T) {
	const maxConns = 8
	e := newEnv(t)
	s := NewServer(e.rds, Config{MaxConnections: maxConns})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Shutdown(context.Background()) })
	addr := ln.Addr().String()
	a := e.user(t, "app-a", "ka", "~a:*", "+@all", "-@dangerous", "-@scripting")
	b := e.user(t, "app-b", "kb", "~b:*", "+@all", "-@dangerous", "-@scripting")
	if err := e.admin.Set(context.Background(), "a:v", strings.Repeat("x", 60<<10), 0).Err(); err != nil {
		t.Fatal(err)
	}
	get := fmt.Sprintf("GET /get/a:v HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", a)
	var sent sync.WaitGroup
	for range maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		// One request at a time (pipelined ones wait for the next
		// request's header, idle and evictable, when the socket is
		// full), far more than the sockets' buffers hold.
		sent.Go(func() {
			for range 400 {
				if _, err := io.WriteString(c, get); err != nil {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	sent.Wait()
	// The attacker's connections are stuck writing responses until the
	// write timeout (a minute).
	testenv.Eventually(t, 10*time.Second, "the victim's new connection served", func() error {
		c := dialHTTP(t, addr)
		defer c.c.Close()
		_, _ = fmt.Fprintf(c.c, "GET /ping HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", b)
		if status, body, err := c.read(); err != nil || status != http.StatusOK {
			return fmt.Errorf("%d %q %w", status, body, err)
		}
		return nil
	})
}
