package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestReplyDesync: a tenant whose reply overruns the gateway's budget at
// exactly the wrong byte must not leave bytes of its own on a pooled
// connection: the next identity on it would read the tenant's forged
// replies (its AUTH "confirmed" by a fake +OK), and its real replies would
// be served to the tenant's next request. User A stores a value sized to
// use the reply budget exactly and a second value that looks like the
// replies to RESET, AUTH and a GET; it reads both in one pipeline; user B
// then reads its secret on the same (only) connection.
func TestReplyDesync(t *testing.T) {
	const budget = 4 << 10
	buf := captureLog{mu: &sync.Mutex{}, b: &bytes.Buffer{}}
	e := newEnv(t, withPoolSize(1), withLimits(Limits{MaxReplyBytes: budget, MaxArrayLen: 100, MaxDepth: 8}), withConfig(Config{Log: buf}))
	a := e.user(t, "a", "key-a", "~a:*", "+@all")
	b := e.user(t, "b", "key-b", "~b:*", "+@all")
	ctx := context.Background()
	const secret = "B-SECRET-VALUE"
	if err := e.admin.Set(ctx, "b:secret", secret, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := e.cmd(t, a, "SET", "a:evil", "+RESET\r\n+OK\r\n$5\r\nFORGE"); got.Status != http.StatusOK {
		t.Fatalf("SET a:evil: %d %s", got.Status, got.Body)
	}
	if got := e.cmd(t, a, "SET", "a:small", "mine"); got.Status != http.StatusOK {
		t.Fatalf("SET a:small: %d %s", got.Status, got.Body)
	}
	// Whatever the reader counts per reply (header, payload, CRLF), one of
	// these sizes ends GET a:big's reply exactly at the budget.
	for n := budget - 64; n <= budget; n++ {
		if err := e.admin.Set(ctx, "a:big", strings.Repeat("x", n), 0).Err(); err != nil {
			t.Fatal(err)
		}
		e.do(t, http.MethodPost, "/pipeline", a, []byte(`[["GET","a:big"],["GET","a:evil"]]`))
		if got := e.do(t, http.MethodGet, "/get/b:secret", b, nil); got.Body != `{"result":"`+secret+`"}` {
			t.Fatalf("a:big of %d bytes: B's GET b:secret after A's pipeline answered %d %.200s", n, got.Status, got.Body)
		}
		if got := e.do(t, http.MethodGet, "/get/a:small", a, nil); got.Body != `{"result":"mine"}` {
			t.Fatalf("a:big of %d bytes: A's GET a:small after B's request answered %d %.200s", n, got.Status, got.Body)
		}
	}
	if l := buf.String(); strings.Contains(l, secret) || strings.Contains(l, "FORGE") {
		t.Errorf("the log quotes reply data:\n%s", l)
	}
}
