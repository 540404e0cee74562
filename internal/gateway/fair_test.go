package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// blocked counts the clients of user blocked in cmd.
func (e *env) blocked(t *testing.T, user, cmd string) int {
	t.Helper()
	list, err := e.admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("cannot list clients: %v", err)
	}
	n := 0
	for l := range strings.SplitSeq(list, "\n") {
		if strings.Contains(l, " user="+user+" ") && strings.Contains(l, " flags=b ") && strings.Contains(l, " cmd="+cmd+" ") {
			n++
		}
	}
	return n
}

// waitBlocked waits until at least n clients of user are blocked in cmd.
func (e *env) waitBlocked(t *testing.T, user, cmd string, n int) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d %s of %s blocked", n, cmd, user), func() error {
		if got := e.blocked(t, user, cmd); got < n {
			return fmt.Errorf("%d blocked", got)
		}
		return nil
	})
}

// TestFairShare: one token keeping a hundred BLPOP k 0 in flight holds its
// share of the pool, no more; its requests over the share get 429, and
// another token's requests are all served while its BLPOPs still block.
func TestFairShare(t *testing.T) {
	const share, attacks = 2, 100
	e := newEnv(t, withPoolSize(8), withRedisOptions(WithConnsPerToken(share)), withTimeout(25*time.Second),
		withConfig(Config{Policy: Policy{MaxBlock: 20 * time.Second}}))
	mallory := e.user(t, "mallory", "k", "~*", "+@all")
	alice := e.user(t, "alice", "k", "~*", "+@all")
	if err := e.admin.RPush(context.Background(), "jobs", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}

	results := make(chan response, attacks)
	for range attacks {
		go func() { results <- e.cmd(t, mallory, "BLPOP", "queue", "0") }()
	}
	e.waitBlocked(t, "mallory", "blpop", share)

	// Alice, meanwhile: sequential and concurrent requests, a pipeline, a
	// transaction and blocking commands that find data, all served.
	var got []response
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			r := e.cmd(t, alice, "INCR", "n")
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	for range 10 {
		got = append(got, e.cmd(t, alice, "INCR", "n"))
	}
	var counts []int
	for i, r := range got {
		var c int
		if _, err := fmt.Sscanf(r.Body, `{"result":%d}`, &c); err != nil || r.Status != http.StatusOK {
			t.Fatalf("Another token's requests should all be served while one token holds its share.\nINCR %d: got %d %s", i, r.Status, r.Body)
		}
		counts = append(counts, c)
	}
	slices.Sort(counts)
	want := make([]int, 20)
	for i := range want {
		want[i] = i + 1
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("Each of another token's requests should get its own reply.\nINCR replies: -want, +got:\n%s", diff)
	}
	others := []struct{ path, body, want string }{
		{"/pipeline", `[["INCR","n"],["GET","n"]]`, `[{"result":21},{"result":"21"}]`},
		{"/multi-exec", `[["INCR","n"],["GET","n"]]`, `[{"result":22},{"result":"22"}]`},
		{"/", `["BLPOP","jobs","0"]`, `{"result":["jobs","a"]}`},
		{"/", `["BLMOVE","jobs","done","LEFT","RIGHT","0"]`, `{"result":"b"}`},
	}
	for _, o := range others {
		if r := e.do(t, http.MethodPost, o.path, alice, []byte(o.body)); r.Status != http.StatusOK || r.Body != o.want {
			t.Errorf("Another token's requests should be served while one token holds its share.\nPOST %s %s: want 200 %s, got %d %s", o.path, o.body, o.want, r.Status, r.Body)
		}
	}

	// Mallory's requests over its share waited, then got 429 with
	// Retry-After, while its share's BLPOPs still blocked.
	busy := `{"error":"too many requests of this token in flight: it holds its share of the connections to Redis (2, or 1 while other tokens hold most of them); retry later"}`
	for i := range attacks - share {
		select {
		case r := <-results:
			if r.Status != http.StatusTooManyRequests || r.Body != busy || r.Header.Get("Retry-After") != "1" {
				t.Errorf("A request over its token's share should get 429 with Retry-After.\nrequest %d: got %d %s (Retry-After %q)", i, r.Status, r.Body, r.Header.Get("Retry-After"))
			}
		case <-time.After(time.Minute):
			t.Fatalf("only %d of mallory's requests over its share answered", i)
		}
	}
	if n := e.blocked(t, "mallory", "blpop"); n != share {
		t.Errorf("A token should hold its share of connections, no more: %d of its BLPOPs block, want %d", n, share)
	}
	if err := e.admin.RPush(context.Background(), "queue", "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	var values []string
	for range share {
		r := <-results
		values = append(values, r.Body)
	}
	slices.Sort(values)
	if diff := cmp.Diff([]string{`{"result":["queue","x"]}`, `{"result":["queue","y"]}`}, values); diff != "" {
		t.Errorf("The BLPOPs of a token's share should run as usual.\n-want, +got:\n%s", diff)
	}
}

// TestFairShareReserve: four tokens each keeping five BLPOP k 0 in flight
// took the whole pool (a quarter each), and another token's request waited
// until their BLPOPs ended. Together they now hold three shares' worth, and
// a sixteenth of the pool for a token that held nothing, and another token
// is served while they all still block.
func TestFairShareReserve(t *testing.T) {
	const pool, perToken = 16, 5
	// The BLPOPs block until the test pushes, however slow the machine.
	e := newEnv(t, withPoolSize(pool), withTimeout(5*time.Minute),
		withConfig(Config{Policy: Policy{MaxBlock: 4 * time.Minute}}))
	attackers := []string{"m0", "m1", "m2", "m3"}
	results := make(chan response, len(attackers)*perToken)
	for _, name := range attackers {
		token := e.user(t, name, "k", "~"+name+":*", "+@all")
		for range perToken {
			go func() { results <- e.cmd(t, token, "BLPOP", name+":q", "0") }()
		}
	}
	victim := e.user(t, "victim", "k", "~v:*", "+@all")
	// Every attacker request blocks in Redis or was refused.
	var refused []response
	blocked := func() int {
		n := 0
		for _, name := range attackers {
			n += e.blocked(t, name, "blpop")
		}
		return n
	}
	testenv.Eventually(t, time.Minute, "every attacker request blocked or refused", func() error {
		for more := true; more; {
			select {
			case r := <-results:
				refused = append(refused, r)
			default:
				more = false
			}
		}
		if n := blocked(); n+len(refused) != len(attackers)*perToken {
			return fmt.Errorf("%d blocked, %d refused", n, len(refused))
		}
		return nil
	})
	before := blocked()

	r := e.cmd(t, victim, "SET", "v:k", "1")
	if r.Status != http.StatusOK || r.Body != `{"result":"OK"}` {
		t.Errorf("another token's SET while four tokens block: want 200 {\"result\":\"OK\"}, got %d %s", r.Status, r.Body)
	}
	if after := blocked(); after != before {
		t.Errorf("another token's SET was answered only once the attackers' BLPOPs ended (%d blocked before it, %d after): it waited for their connections", before, after)
	}
	// Which token stops first depends on the order they came in: once
	// three shares' worth block, only a token holding nothing takes one.
	if before > 3*(pool/4)+1 {
		t.Errorf("four tokens' BLPOPs: want at most three shares of %d and one sixteenth of the pool blocked, %d, got %d", pool/4, 3*(pool/4)+1, before)
	}
	for _, name := range attackers {
		if n := e.blocked(t, name, "blpop"); n > pool/4 {
			t.Errorf("%s's BLPOPs: want at most its share, %d, blocked, got %d", name, pool/4, n)
		}
	}
	for _, r := range refused {
		if r.Status != http.StatusTooManyRequests {
			t.Errorf("an attacker request over its share or the reserve: want 429, got %d %s", r.Status, r.Body)
		}
	}
	for _, name := range attackers {
		if err := e.admin.RPush(context.Background(), name+":q", "x", "x", "x", "x", "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range len(attackers)*perToken - len(refused) {
		<-results
	}
}

func TestShares(t *testing.T) {
	s := &shares{max: 1}
	a, b := tag{1}, tag{2}
	ctx := context.Background()
	far := time.Now().Add(time.Hour)
	if err := s.acquire(ctx, a, far); err != nil {
		t.Fatal(err)
	}
	if err := s.acquire(ctx, b, far); err != nil {
		t.Errorf("Another identity's share should be free: %v", err)
	}
	// A waits: its next round runs when its connection comes back.
	got := make(chan error, 1)
	go func() { got <- s.acquire(ctx, a, far) }()
	testenv.Eventually(t, 10*time.Second, "a round waiting", func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.m[a].waiting) != 1 {
			return errors.New("not waiting")
		}
		return nil
	})
	s.release(a)
	if err := <-got; err != nil {
		t.Errorf("A round waiting for its identity's share should get the connection given back: %v", err)
	}
	// One whose deadline passes gives up.
	if err := s.acquire(ctx, a, time.Now().Add(10*time.Millisecond)); !errors.Is(err, ErrTooBusy) {
		t.Errorf("A round whose deadline passed while it waited: want %v, got %v", ErrTooBusy, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.acquire(cctx, a, far); !errors.Is(err, ErrTooBusy) {
		t.Errorf("A round whose context ended while it waited: want %v, got %v", ErrTooBusy, err)
	}
	// The gateway's own rounds have no share.
	for range 3 {
		if err := s.acquire(ctx, tag{}, far); err != nil {
			t.Errorf("The zero tag should have no share: %v", err)
		}
	}
	s.release(a)
	s.release(b)
	if len(s.m) != 0 {
		t.Errorf("Shares given back should leave nothing behind; %d identities left", len(s.m))
	}
}
