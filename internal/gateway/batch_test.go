package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// busy keeps Redis busy for d with a script run as the admin, so that the
// gateway's requests pile up meanwhile, and returns when the script ends.
func (e *env) busy(t *testing.T, d time.Duration) {
	t.Helper()
	const script = `local t = redis.call('TIME'); local s = t[1] * 1000000 + t[2]
while true do t = redis.call('TIME'); if t[1] * 1000000 + t[2] - s >= tonumber(ARGV[1]) then return 1 end end`
	if err := e.admin.Eval(context.Background(), script, nil, d.Microseconds()).Err(); err != nil {
		t.Errorf("cannot keep Redis busy: %v", err)
	}
}

// conns counts the connections to Redis authenticated as user.
func (e *env) conns(t *testing.T, user string) int {
	t.Helper()
	list, err := e.admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("cannot list clients: %v", err)
	}
	return strings.Count(list, " user="+user+" ")
}

func TestBatching(t *testing.T) {
	e := newEnv(t)
	app := e.user(t, "app", "k", "~*", "+@all")
	wrong := contract.Token("app", "wrong")
	const n = 40
	var wg sync.WaitGroup
	got := make([]response, n)
	refused := make([]response, n)
	wg.Go(func() { e.busy(t, 300*time.Millisecond) })
	time.Sleep(50 * time.Millisecond)
	for i := range n {
		wg.Go(func() { got[i] = e.cmd(t, app, "INCR", "n") })
		wg.Go(func() { refused[i] = e.cmd(t, wrong, "SET", "refused:"+strconv.Itoa(i), "x") })
	}
	wg.Wait()

	// Each request got its own reply: the counts 1..n, once each.
	var counts []int
	for i, r := range got {
		var c int
		if _, err := fmt.Sscanf(r.Body, `{"result":%d}`, &c); err != nil || r.Status != http.StatusOK {
			t.Fatalf("request %d: want 200 with a count, got %d %s", i, r.Status, r.Body)
		}
		counts = append(counts, c)
	}
	slices.Sort(counts)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("Concurrent requests of one token should each get their own reply.\nINCR counts: -want, +got:\n%s", diff)
	}
	for i, r := range refused {
		if r.Status != http.StatusUnauthorized {
			t.Errorf("A batch refused by AUTH should answer 401 to each of its requests.\nrequest %d: got %d %s", i, r.Status, r.Body)
		}
	}
	if keys := e.admin.Keys(context.Background(), "refused:*").Val(); len(keys) != 0 {
		t.Errorf("A batch refused by AUTH should run nothing; it wrote %v", keys)
	}
	// Requests that arrived while maxRounds rounds ran were batched: the
	// token never held more connections than that (without batching, the
	// pool's 16).
	if c := e.conns(t, "app"); c > maxRounds {
		t.Errorf("Concurrent requests of one token should be batched on at most %d connections; %d are authenticated as it", maxRounds, c)
	}
}

func TestAloneNotBatched(t *testing.T) {
	// A share of 8 connections: more than maxRounds blocking commands fit.
	e := newEnv(t, withPoolSize(32), withTimeout(30*time.Second), withConfig(Config{Policy: Policy{MaxBlock: 20 * time.Second}}))
	app := e.user(t, "app", "k", "~*", "+@all")
	cases := map[string]struct {
		reason string
		args   []any
	}{
		"BLPOP":      {reason: "A BLPOP runs alone: the token's other requests do not wait for it.", args: []any{"BLPOP", "empty", "0"}},
		"BLMOVE":     {reason: "A BLMOVE runs alone.", args: []any{"BLMOVE", "empty", "other", "LEFT", "RIGHT", "0"}},
		"XREADBlock": {reason: "An XREAD BLOCK runs alone.", args: []any{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}},
		"WAIT":       {reason: "A WAIT runs alone.", args: []any{"WAIT", "1", "0"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cmd := strings.ToLower(tc.args[0].(string))
			const n = maxRounds + 2
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() { e.cmd(t, app, tc.args...) })
			}
			e.waitBlocked(t, "app", cmd, n)
			got := e.cmd(t, app, "GET", "k")
			// Answered while every blocking command still blocked: it
			// waited for none of them.
			if b := e.blocked(t, "app", cmd); got.Status != http.StatusOK || b != n {
				t.Errorf("%s\nGET during %v: got %d %s with %d of %d still blocked", tc.reason, tc.args, got.Status, got.Body, b, n)
			}
			e.unblock(t, "app")
			wg.Wait()
		})
	}
}

// unblock ends the blocking commands of user's clients (as a timeout).
func (e *env) unblock(t *testing.T, user string) {
	t.Helper()
	list, err := e.admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("cannot list clients: %v", err)
	}
	for l := range strings.SplitSeq(list, "\n") {
		id, ok := strings.CutPrefix(strings.Fields(l + " x")[0], "id=")
		if ok && strings.Contains(l, " user="+user+" ") && strings.Contains(l, " flags=b ") {
			if err := e.admin.Do(context.Background(), "CLIENT", "UNBLOCK", id).Err(); err != nil {
				t.Fatalf("cannot unblock client %s: %v", id, err)
			}
		}
	}
}

func TestQueuedTimeout(t *testing.T) {
	e := newEnv(t, withTimeout(300*time.Millisecond))
	app := e.user(t, "app", "k", "~*", "+@all")
	// Connections dialled before Redis stalls: a dial waits for Redis's
	// answer to PING.
	var warm []*conn
	for range maxRounds {
		c, err := e.rds.pool.get(context.Background(), tag{}, time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		e.rds.pool.put(c, true)
	}
	var wg sync.WaitGroup
	var busyEnded atomic.Bool
	wg.Go(func() {
		e.busy(t, 2*time.Second)
		busyEnded.Store(true)
	})
	time.Sleep(50 * time.Millisecond)
	got := make([]response, 20)
	during := make([]bool, len(got))
	for i := range got {
		wg.Go(func() {
			got[i] = e.cmd(t, app, "INCR", "n")
			during[i] = !busyEnded.Load()
		})
	}
	wg.Wait()
	for i, r := range got {
		// Answered while Redis was still busy: bounded by the request
		// timeout, not by the busy Redis.
		if r.Status != http.StatusGatewayTimeout || !during[i] {
			t.Errorf("A request waiting for a round should be bounded by its own timeout.\nrequest %d: got %d %s, answered while Redis was busy: %t", i, r.Status, r.Body, during[i])
		}
	}
	// Only the rounds in flight when Redis stalled had sent their INCR;
	// the requests that timed out waiting never ran.
	if n, _ := strconv.Atoi(e.get(t, "n")); n > maxRounds {
		t.Errorf("Requests that timed out before their round should not run: n = %d, want at most %d", n, maxRounds)
	}
}

func TestRoundPanics(t *testing.T) {
	// No pool: every round panics, as a bug in a round would.
	r := &Redis{timeout: time.Second, now: time.Now}
	id := r.Identity("u", "k")
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			cl := r.newCall(context.Background(), [][][]byte{{[]byte("PING")}})
			defer func() {
				if p := recover(); p != nil {
					errs <- fmt.Errorf("panic: %v", p)
				}
			}()
			r.batches.do(r, id, cl)
			errs <- cl.err
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("A round that panics should release the requests waiting for it; some still wait.")
	}
	close(errs)
	for err := range errs {
		if err == nil || (!strings.HasPrefix(err.Error(), "panic: ") && !errors.Is(err, errRoundAborted)) {
			t.Errorf("A request of a round that panicked should panic or fail with %v; got %v", errRoundAborted, err)
		}
	}
	if len(r.batches.groups) != 0 {
		t.Errorf("A round that panicked should leave no group behind; %d left", len(r.batches.groups))
	}
}

func TestPolicyModes(t *testing.T) {
	p := Policy{MaxBlock: 10 * time.Second}
	cases := map[string]struct {
		reason string
		cmd    string
		want   Mode
	}{
		"GET":           {reason: "A plain command may be batched.", cmd: "GET k", want: ModeShared},
		"XREAD":         {reason: "XREAD without BLOCK does not block.", cmd: "XREAD STREAMS block 0", want: ModeShared},
		"BLPOP":         {reason: "BLPOP blocks: it runs alone.", cmd: "BLPOP a 1", want: ModeAlone},
		"BZMPOP":        {reason: "BZMPOP blocks.", cmd: "BZMPOP 0 1 z MIN", want: ModeAlone},
		"XREADGROUP":    {reason: "XREADGROUP BLOCK blocks.", cmd: "XREADGROUP GROUP g c BLOCK 5 STREAMS s >", want: ModeAlone},
		"WAITAOF":       {reason: "WAITAOF blocks.", cmd: "WAITAOF 1 0 0", want: ModeAlone},
		"SELECT":        {reason: "SELECT leaves state on the connection.", cmd: "SELECT 1", want: ModeStateful},
		"CLIENTSETNAME": {reason: "CLIENT SETNAME leaves state on the connection.", cmd: "CLIENT SETNAME x", want: ModeStateful},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var cmd [][]byte
			for f := range strings.FieldsSeq(tc.cmd) {
				cmd = append(cmd, []byte(f))
			}
			got, err := p.check(cmd)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\ncheck(%q): -want, +got:\n%s", tc.reason, tc.cmd, diff)
			}
		})
	}
}
