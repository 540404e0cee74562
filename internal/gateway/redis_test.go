package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/resp"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

func TestRedisRestart(t *testing.T) {
	e := newEnv(t)
	if got := e.cmd(t, adminToken(), "SET", "k", "v"); got.Status != http.StatusOK {
		t.Fatalf("before the restart: %d %s", got.Status, got.Body)
	}
	e.redis.Stop()
	// 503, not the 504 of a request that waited for its timeout: the
	// refused dial answers at once.
	got := e.cmd(t, adminToken(), "GET", "k")
	if got.Status != http.StatusServiceUnavailable || got.Body != `{"error":"Redis is unavailable"}` {
		t.Errorf("while Redis is down: want 503 {\"error\":\"Redis is unavailable\"}, got %d %s", got.Status, got.Body)
	}
	e.redis.Restart(t)
	// Every pooled connection died with the old server; the next request
	// must work on the first try.
	for i := range 20 {
		if got := e.cmd(t, adminToken(), "SET", "k", "again"); got.Status != http.StatusOK {
			t.Fatalf("request %d after the restart: want 200, got %d %s", i, got.Status, got.Body)
		}
	}
}

func TestRedisUnreachable(t *testing.T) {
	// Nothing listens on the port.
	rds := NewRedis("127.0.0.1:"+itoa(testenv.FreePort(t)), 4, time.Second, 10*time.Second, DefaultLimits)
	e := &env{url: serve(t, NewServer(rds, Config{}))}
	got := e.cmd(t, adminToken(), "PING")
	if got.Status != http.StatusServiceUnavailable || got.Body != `{"error":"Redis is unavailable"}` {
		t.Errorf("Redis unreachable: want 503 {\"error\":\"Redis is unavailable\"}, got %d %s", got.Status, got.Body)
	}
}

func TestBlockingBounded(t *testing.T) {
	e := newEnv(t, withConfig(Config{Policy: Policy{MaxBlock: 300 * time.Millisecond}}))
	cases := map[string]struct {
		reason string
		args   []any
		want   string
	}{
		"BLPOPForever": {reason: "BLPOP with timeout 0 answers null after MaxBlock.", args: []any{"BLPOP", "empty", "0"}, want: `{"result":null}`},
		"BLPOPLong":    {reason: "BLPOP longer than MaxBlock is cut to it.", args: []any{"BLPOP", "empty", "3600"}, want: `{"result":null}`},
		"XREADBlock":   {reason: "XREAD BLOCK 0 answers null after MaxBlock.", args: []any{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, want: `{"result":null}`},
		"BZMPOP":       {reason: "BZMPOP's timeout comes first.", args: []any{"BZMPOP", "0", "1", "z", "MIN"}, want: `{"result":null}`},
		"WAIT":         {reason: "WAIT with timeout 0 answers after MaxBlock.", args: []any{"WAIT", "1", "0"}, want: `{"result":0}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := e.cmd(t, adminToken(), tc.args...)
			if diff := cmp.Diff(tc.want, got.Body); diff != "" {
				t.Errorf("%s\n%v: -want, +got:\n%s", tc.reason, tc.args, diff)
			}
		})
	}
}

func TestHostileReplies(t *testing.T) {
	e := newEnv(t, withLimits(Limits{MaxReplyBytes: 4 << 10, MaxArrayLen: 100, MaxDepth: 8}))
	ctx := context.Background()
	if err := e.admin.Set(ctx, "big", strings.Repeat("x", 8<<10), 0).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := e.admin.RPush(ctx, "long", i).Err(); err != nil {
			t.Fatal(err)
		}
	}
	const tooLarge = `{"error":"ERR reply too large for the gateway: a request may read 4096 bytes (its replies, and 64 per array element): read less per request"}`
	cases := map[string]struct {
		reason string
		method string
		path   string
		body   string
	}{
		"BigBulk":      {reason: "A value above the reply budget is a JSON error.", method: http.MethodGet, path: "/get/big"},
		"LongArray":    {reason: "An array above the element bound is a JSON error.", method: http.MethodGet, path: "/lrange/long/0/-1"},
		"DeepNesting":  {reason: "A script's deeply nested table is a JSON error.", method: http.MethodPost, path: "/", body: `["EVAL","local t = {} local c = t for i = 1, 50 do local n = {} c[1] = n c = n end return t","0"]`},
		"Pipeline":     {reason: "The budget covers all replies of a pipeline.", method: http.MethodPost, path: "/pipeline", body: `[["GETRANGE","big",0,3000],["GETRANGE","big",0,3000]]`},
		"LongStatus":   {reason: "A script's status reply above the budget is a JSON error.", method: http.MethodPost, path: "/", body: `["EVAL","return redis.status_reply(string.rep('s', 100000))","0"]`},
		"BigInside":    {reason: "A big element inside a table, with more after it, is a JSON error.", method: http.MethodPost, path: "/", body: `["EVAL","return {1, {2, string.rep('b', 10000), {3, 4}}, 'after', {5}}","0"]`},
		"PipelineRest": {reason: "A pipeline whose first reply is too large still has its other replies read.", method: http.MethodPost, path: "/pipeline", body: `[["GET","big"],["LRANGE","long",0,5],["ECHO","x"]]`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			got := e.do(t, tc.method, tc.path, adminToken(), body)
			if got.Status != http.StatusBadRequest || got.Body != tooLarge {
				t.Errorf("%s\n%s %s: want 400 %s, got %d %s", tc.reason, tc.method, tc.path, tooLarge, got.Status, trunc(got.Body))
			}
			// The rest of the reply was read and discarded: the next
			// request is answered correctly, on the same connection.
			dialled := e.dialled(t)
			if got := e.cmd(t, adminToken(), "ECHO", "next"); got.Body != `{"result":"next"}` {
				t.Errorf("%s\nthe request after: got %d %s", tc.reason, got.Status, got.Body)
			}
			if n := e.dialled(t) - dialled; n != 0 {
				t.Errorf("%s\nthe request after dialled %d new connections: the oversized reply cost its connection", tc.reason, n)
			}
		})
	}
}

// TestOversizedReplyInARound: requests batched after one whose reply is too
// large get their own replies (they ran).
func TestOversizedReplyInARound(t *testing.T) {
	e := newEnv(t, withLimits(Limits{MaxReplyBytes: 4 << 10, MaxArrayLen: 100, MaxDepth: 8}))
	ctx := context.Background()
	if err := e.admin.Set(ctx, "big", strings.Repeat("x", 8<<10), 0).Err(); err != nil {
		t.Fatal(err)
	}
	id := e.rds.Identity(contract.AdminUser, adminPassword)
	calls := []*call{
		e.rds.newCall(ctx, [][][]byte{{[]byte("INCR"), []byte("n")}}),
		e.rds.newCall(ctx, [][][]byte{{[]byte("GET"), []byte("big")}, {[]byte("INCR"), []byte("n")}}),
		e.rds.newCall(ctx, [][][]byte{{[]byte("INCR"), []byte("n")}}),
	}
	e.rds.round(ctx, id, calls, false)
	type result struct {
		Replies []resp.Value
		Err     error
	}
	want := []result{
		{Replies: []resp.Value{{Kind: resp.KindInt, Int: 1}}},
		{Err: ErrReplyTooLarge},
		{Replies: []resp.Value{{Kind: resp.KindInt, Int: 3}}},
	}
	got := make([]result, len(calls))
	for i, cl := range calls {
		got[i] = result{Replies: cl.replies, Err: cl.err}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("a round with an oversized reply in the middle: -want, +got:\n%s", diff)
	}
}

// dialled returns how many connections Redis has accepted.
func (e *env) dialled(t *testing.T) int {
	t.Helper()
	info, err := e.admin.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatalf("cannot read INFO stats: %v", err)
	}
	for l := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "total_connections_received:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("INFO stats has no total_connections_received")
	return 0
}

func itoa(i int) string {
	return strings.TrimSpace(string(appendValue(nil, resp.Value{Kind: resp.KindInt, Int: int64(i)}, false)))
}

// TestWedgedPool: a pool whose connections are all held for longer than
// any request may hold one is unhealthy (so /healthz fails and Kubernetes
// restarts the gateway); returning one makes it healthy again.
func TestWedgedPool(t *testing.T) {
	e := newEnv(t, withPoolSize(2), withTimeout(time.Second))
	ctx := context.Background()
	var held []*conn
	for range 2 {
		c, err := e.rds.pool.get(ctx, tag{}, time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if err := e.rds.Healthy(); err != nil {
		t.Errorf("every connection just taken: want healthy, got %v", err)
	}
	e.rds.now = func() time.Time { return time.Now().Add(time.Minute) }
	if err := e.rds.Healthy(); !errors.Is(err, ErrWedged) {
		t.Errorf("every connection held for a minute with a 1 s timeout: want %v, got %v", ErrWedged, err)
	}
	e.rds.pool.put(held[0], false)
	e.rds.now = func() time.Time { return time.Now().Add(time.Second) }
	if err := e.rds.Healthy(); err != nil {
		t.Errorf("a connection returned: want healthy, got %v", err)
	}
	e.rds.pool.put(held[1], false)
}

// TestPanicReturnsSlot: a round that panics after it took a pool slot
// returns it (and closes its connection): with a pool of one, the next
// request is served.
func TestPanicReturnsSlot(t *testing.T) {
	e := newEnv(t, withPoolSize(1))
	id := e.rds.Identity(contract.AdminUser, adminPassword)
	cl := e.rds.newCall(context.Background(), [][][]byte{{[]byte("PING")}})
	calls := 0
	e.rds.now = func() time.Time {
		// round asks first, do second: the panic comes with the slot
		// taken.
		if calls++; calls == 2 {
			panic("boom")
		}
		return time.Now()
	}
	func() {
		defer func() { _ = recover() }()
		e.rds.round(context.Background(), id, []*call{cl}, false)
	}()
	if calls < 2 {
		t.Fatalf("the round did not panic where the test meant it to (%d calls of now)", calls)
	}
	e.rds.now = time.Now
	if n := len(e.rds.pool.sem); n != 0 {
		t.Errorf("after a round panicked: %d pool slots still held", n)
	}
	if got := e.cmd(t, adminToken(), "PING"); got.Status != http.StatusOK {
		t.Errorf("the request after a round panicked: want 200, got %d %s", got.Status, got.Body)
	}
}
