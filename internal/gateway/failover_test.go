package gateway

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/resp"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// A failoverEnv is a gateway serving a Service (testenv.Service, standing
// in for <name>-redis) in front of master a, and b, the replica a failover
// promotes; both with the admin password and the same ACL users, as the
// provider makes them on every pod.
type failoverEnv struct {
	*env
	a, b *testenv.Redis
	svc  *testenv.Service
	// onB is the admin on b.
	onB *goredis.Client
}

func newFailoverEnv(t *testing.T, timeout time.Duration) *failoverEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	f := &failoverEnv{
		a: testenv.StartRedis(t, "--requirepass", adminPassword),
		b: testenv.StartRedis(t, "--requirepass", adminPassword),
	}
	f.svc = testenv.StartService(t, f.a.Addr)
	f.env = &env{redis: f.a}
	f.admin = goredis.NewClient(&goredis.Options{Addr: f.a.Addr, Password: adminPassword, MaxRetries: -1})
	f.onB = goredis.NewClient(&goredis.Options{Addr: f.b.Addr, Password: adminPassword, MaxRetries: -1})
	t.Cleanup(func() { _ = f.admin.Close(); _ = f.onB.Close() })
	f.rds = NewRedis(f.svc.Addr, 16, time.Second, timeout, DefaultLimits)
	t.Cleanup(f.rds.Close)
	f.srv = NewServer(f.rds, Config{Policy: Policy{MaxBlock: timeout / 2}})
	f.url = serve(t, f.srv)
	return f
}

// user makes an ACL user on both servers and returns its token.
func (f *failoverEnv) user(t *testing.T, name, key string) string {
	t.Helper()
	if err := f.onB.Do(context.Background(), "ACL", "SETUSER", name, "reset", "on", ">"+key, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	return f.env.user(t, name, key, "~*", "&*", "+@all")
}

// failover demotes a (a replica whose master link is down, as the
// coordinator holds a Redis that is no master) and routes the Service to b.
func (f *failoverEnv) failover(t *testing.T) {
	t.Helper()
	if err := f.admin.Do(context.Background(), "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
		t.Fatalf("cannot demote the master: %v", err)
	}
	f.svc.Route(f.b.Addr)
}

// onBGet reads key on b, "" when it does not exist.
func (f *failoverEnv) onBGet(t *testing.T, key string) string {
	t.Helper()
	v, err := f.onB.Get(context.Background(), key).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		t.Fatal(err)
	}
	return v
}

// TestFailover: after a failover moved the address the gateway serves,
// its pooled connections (which still lead to the old master) are not
// used again, and a request Redis refused because its server is no master
// runs once more on the new master when it provably did not run.
func TestFailover(t *testing.T) {
	ok := response{Status: http.StatusOK, Body: `{"result":"OK"}`}
	readonly := func(body string) response { return response{Status: http.StatusBadRequest, Body: body} }

	t.Run("WriteRunsOnTheNewMaster", func(t *testing.T) {
		f := newFailoverEnv(t, 10*time.Second)
		x := f.user(t, "x", "kx")
		if got := f.cmd(t, x, "SET", "k", "1"); got.Status != http.StatusOK {
			t.Fatalf("before the failover: %d %s", got.Status, got.Body)
		}
		f.failover(t)
		got := f.cmd(t, x, "SET", "k", "2")
		if diff := cmp.Diff(ok, response{Status: got.Status, Body: got.Body}); diff != "" {
			t.Errorf("the first write after the failover, on a pooled connection to the demoted master: -want, +got:\n%s", diff)
		}
		if v := f.onBGet(t, "k"); v != "2" {
			t.Errorf("the new master should hold the write, k is %q", v)
		}
	})

	t.Run("OtherIdentitiesFollow", func(t *testing.T) {
		f := newFailoverEnv(t, 10*time.Second)
		x, y := f.user(t, "x", "kx"), f.user(t, "y", "ky")
		for _, tok := range []string{x, y} {
			if got := f.cmd(t, tok, "SET", "k", "old"); got.Status != http.StatusOK {
				t.Fatalf("before the failover: %d %s", got.Status, got.Body)
			}
		}
		f.failover(t)
		if got := f.cmd(t, x, "SET", "k", "new"); got.Status != http.StatusOK {
			t.Fatalf("x's write after the failover: %d %s", got.Status, got.Body)
		}
		// y's idle connection led to the demoted master, which still
		// holds the old value: it was dropped with x's refusal.
		if got := f.cmd(t, y, "GET", "k"); got.Body != `{"result":"new"}` {
			t.Errorf("y's read after x's write on the new master: want the new master's value, got %d %s", got.Status, got.Body)
		}
	})

	t.Run("PipelineNotRunAgain", func(t *testing.T) {
		f := newFailoverEnv(t, 10*time.Second)
		x := f.user(t, "x", "kx")
		if got := f.cmd(t, x, "SET", "k", "1"); got.Status != http.StatusOK {
			t.Fatalf("before the failover: %d %s", got.Status, got.Body)
		}
		f.failover(t)
		got := f.do(t, http.MethodPost, "/pipeline", x, []byte(`[["SET","p","1"],["GET","k"]]`))
		want := response{Status: http.StatusOK, Body: `[{"error":"READONLY You can't write against a read only replica."},{"result":"1"}]`}
		if diff := cmp.Diff(want, response{Status: got.Status, Body: got.Body}); diff != "" {
			t.Errorf("a pipeline on the demoted master is answered as it ran, not run again: -want, +got:\n%s", diff)
		}
		if v := f.onBGet(t, "p"); v != "" {
			t.Errorf("the refused pipeline ran again on the new master: p is %q", v)
		}
		got = f.do(t, http.MethodPost, "/pipeline", x, []byte(`[["SET","p","2"]]`))
		if diff := cmp.Diff(response{Status: http.StatusOK, Body: `[{"result":"OK"}]`}, response{Status: got.Status, Body: got.Body}); diff != "" {
			t.Errorf("the next pipeline runs on the new master: -want, +got:\n%s", diff)
		}
	})

	t.Run("ScriptNotRunAgain", func(t *testing.T) {
		f := newFailoverEnv(t, 10*time.Second)
		x := f.user(t, "x", "kx")
		if got := f.cmd(t, x, "SET", "k", "1"); got.Status != http.StatusOK {
			t.Fatalf("before the failover: %d %s", got.Status, got.Body)
		}
		f.failover(t)
		// The script's commands before its write ran on the demoted
		// master: it is not run again.
		got := f.cmd(t, x, "EVAL", "return redis.call('SET', 's', '1')", "0")
		if got.Status != http.StatusBadRequest || f.onBGet(t, "s") != "" {
			t.Errorf("a script refused by the demoted master: want 400 and not run on the new master, got %d %s, s %q", got.Status, got.Body, f.onBGet(t, "s"))
		}
		if got := f.cmd(t, x, "EVAL", "return redis.call('SET', 's', '2')", "0"); got.Status != http.StatusOK {
			t.Errorf("the next script runs on the new master: got %d %s", got.Status, got.Body)
		}
	})

	t.Run("ForgedRefusalMovesNothing", func(t *testing.T) {
		f := newFailoverEnv(t, 10*time.Second)
		x := f.user(t, "x", "kx")
		forged := `{"error":"READONLY You can't write against a read only replica."}`
		got := f.cmd(t, x, "EVAL", "return redis.error_reply(\"READONLY You can't write against a read only replica.\")", "0")
		if diff := cmp.Diff(readonly(forged), response{Status: got.Status, Body: got.Body}); diff != "" {
			t.Errorf("a script's own READONLY is relayed: -want, +got:\n%s", diff)
		}
		// HELLO found a master: the connection is kept, the pool has
		// not moved.
		dialled := f.dialled(t)
		if got := f.cmd(t, x, "SET", "k", "1"); got.Status != http.StatusOK {
			t.Errorf("the request after a forged refusal: %d %s", got.Status, got.Body)
		}
		if n := f.dialled(t) - dialled; n != 0 {
			t.Errorf("a script's forged READONLY cost %d new connections", n)
		}
	})

	t.Run("FrozenMasterLeftBehind", func(t *testing.T) {
		// A short request timeout: the write on the frozen master waits for
		// it; the next one must dial, authenticate and run within it.
		f := newFailoverEnv(t, 3*time.Second)
		x := f.user(t, "x", "kx")
		// Three idle connections to a, each answered by a (the Service
		// picks a connection's backend when it accepts it).
		ctx := context.Background()
		var cs []*conn
		for range 3 {
			c, err := f.rds.pool.get(ctx, tag{}, time.Now().Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			c.setDeadline(time.Now(), time.Now().Add(time.Minute), time.Second)
			c.rd.Start(authBudget)
			if _, err := c.nc.Write(resp.AppendCommand(nil, []byte("PING"))); err != nil {
				t.Fatal(err)
			}
			if _, err := c.rd.Read(); err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			f.rds.pool.put(c, true)
		}
		f.a.Freeze(t)
		t.Cleanup(func() { f.a.Thaw(t) })
		f.svc.Route(f.b.Addr)
		if got := f.cmd(t, x, "SET", "k", "1"); got.Status != http.StatusGatewayTimeout {
			t.Errorf("a write on a connection to the frozen master: want 504, got %d %s", got.Status, got.Body)
		}
		// The write may have run before the master froze: it is not run
		// again. The next request does not wait for the frozen master.
		if got := f.cmd(t, x, "SET", "k", "2"); got.Status != http.StatusOK || f.onBGet(t, "k") != "2" {
			t.Errorf("the write after a connection to the frozen master timed out: want 200 on the new master, got %d %s", got.Status, got.Body)
		}
	})
}
