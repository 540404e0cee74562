package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// A subscription is an open /subscribe or /psubscribe request.
type subscription struct {
	status      int
	contentType string
	// events are the stream's events, one per data line.
	events <-chan string
	// leave closes the request, as the JS client unsubscribes.
	leave func()
}

func (e *env) stream(t *testing.T, path, token string) subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+path, strings.NewReader("[]"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		s := bufio.NewScanner(res.Body)
		for s.Scan() {
			if d, ok := strings.CutPrefix(s.Text(), "data: "); ok {
				ch <- d
			}
		}
	}()
	return subscription{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), events: ch, leave: cancel}
}

func next(t *testing.T, events <-chan string) string {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			return "<closed>"
		}
		return ev
	case <-time.After(5 * time.Second):
		return "<nothing within 5s>"
	}
}

func TestSubscribe(t *testing.T) {
	e := newEnv(t)
	tok := e.user(t, "app", "k", "~*", "&*", "+@all")
	sub := e.stream(t, "/subscribe/chat/news", tok)
	if sub.status != http.StatusOK || sub.contentType != "text/event-stream" {
		t.Fatalf("POST /subscribe: want 200 text/event-stream, got %d %q", sub.status, sub.contentType)
	}
	events := sub.events
	var got []string
	got = append(got, next(t, events), next(t, events))
	if r := e.do(t, http.MethodPost, "/publish/chat/hello%20world", tok, nil); r.Body != `{"result":1}` {
		t.Fatalf("POST /publish: want 1 receiver, got %d %s", r.Status, r.Body)
	}
	got = append(got, next(t, events))
	want := []string{"subscribe,chat,1", "subscribe,news,2", "message,chat,hello world"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subscription events: -want, +got:\n%s", diff)
	}

	pevents := e.stream(t, "/psubscribe/ch*", tok).events
	got = []string{next(t, pevents)}
	e.do(t, http.MethodPost, "/publish/chat/again", tok, nil)
	got = append(got, next(t, pevents))
	want = []string{"psubscribe,ch*,1", "pmessage,ch*,chat,again"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pattern subscription events: -want, +got:\n%s", diff)
	}
}

func TestSubscribeUnauthorized(t *testing.T) {
	e := newEnv(t)
	e.user(t, "app", "k", "~*", "&*", "+@all")
	if sub := e.stream(t, "/subscribe/chat", contract.Token("app", "wrong")); sub.status != http.StatusUnauthorized {
		t.Errorf("subscribe with a wrong key: want 401, got %d", sub.status)
	}
}

func TestSubscribeRevoked(t *testing.T) {
	e := newEnv(t)
	tok := e.user(t, "app", "k", "~*", "&*", "+@all")
	events := e.stream(t, "/subscribe/chat", tok).events
	if ev := next(t, events); ev != "subscribe,chat,1" {
		t.Fatalf("first event: want subscribe,chat,1, got %q", ev)
	}
	if err := e.admin.Do(context.Background(), "ACL", "SETUSER", "app", "<k").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	e.admin.Publish(context.Background(), "chat", "secret")
	if ev := next(t, events); ev != "<closed>" {
		t.Errorf("a second after its key was removed, the stream got %q; want it closed", ev)
	}
}

// TestSubscribeClientLeaves: the JS client unsubscribes by closing its
// request; the gateway must notice at once, not at the next message, and
// give the subscription's Redis connection and slot back.
func TestSubscribeClientLeaves(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxSubscriptions: 1}))
	tok := e.user(t, "app", "k", "~*", "&*", "+@all")
	sub := e.stream(t, "/subscribe/chat", tok)
	if ev := next(t, sub.events); ev != "subscribe,chat,1" {
		t.Fatalf("first event: want subscribe,chat,1, got %q", ev)
	}
	sub.leave()
	testenv.Eventually(t, 2*time.Second, "no subscriber left on chat", func() error {
		n, err := e.admin.PubSubNumSub(context.Background(), "chat").Result()
		if err != nil || n["chat"] != 0 {
			return fmt.Errorf("%d subscribers: %w", n["chat"], err)
		}
		return nil
	})
	// The only subscription slot is free again.
	sub = e.stream(t, "/subscribe/news", tok)
	if ev := next(t, sub.events); sub.status != http.StatusOK || ev != "subscribe,news,1" {
		t.Errorf("subscribing after the first stream left: want 200 and subscribe,news,1, got %d %q", sub.status, ev)
	}
}

// refused sends a subscription that is to be refused and returns the
// answer; a stream (200) is closed at once and answered as "<stream>".
func (e *env) refused(t *testing.T, path, token string) response {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, e.url+path, strings.NewReader("[]"))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		return response{Status: res.StatusCode, Body: "<stream>", Header: res.Header}
	}
	b, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Body: string(b), Header: res.Header}
}

// TestSubscriptionShares: one token holds at most its share of the
// subscription slots; another token still subscribes.
func TestSubscriptionShares(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxSubscriptions: 4, MaxSubscriptionsPerToken: 2}))
	mallory := e.user(t, "mallory", "k", "~*", "&*", "+@all")
	alice := e.user(t, "alice", "k", "~*", "&*", "+@all")
	var held []subscription
	for i := range 2 {
		sub := e.stream(t, "/subscribe/m"+strconv.Itoa(i), mallory)
		if ev := next(t, sub.events); sub.status != http.StatusOK || ev != "subscribe,m"+strconv.Itoa(i)+",1" {
			t.Fatalf("mallory's subscription %d: want 200 and its confirmation, got %d %q", i, sub.status, ev)
		}
		held = append(held, sub)
	}
	want := `{"error":"too many subscriptions of this token: at most 2 at once"}`
	if got := e.refused(t, "/subscribe/m2", mallory); got.Status != http.StatusTooManyRequests || got.Body != want || got.Header.Get("Retry-After") != "1" {
		t.Errorf("A subscription over its token's share: want 429 %s with Retry-After, got %d %s", want, got.Status, got.Body)
	}
	for i := range 2 {
		sub := e.stream(t, "/subscribe/a"+strconv.Itoa(i), alice)
		if ev := next(t, sub.events); sub.status != http.StatusOK || ev != "subscribe,a"+strconv.Itoa(i)+",1" {
			t.Errorf("Another token should subscribe while one holds its share.\nalice's subscription %d: got %d %q", i, sub.status, ev)
		}
	}
	// A stream that ends gives its token's slot back.
	held[0].leave()
	testenv.Eventually(t, 5*time.Second, "mallory subscribing again", func() error {
		if got := e.refused(t, "/subscribe/m3", mallory); got.Status != http.StatusOK {
			return fmt.Errorf("%d %s", got.Status, got.Body)
		}
		return nil
	})
}

// TestSubscribeRefused: a subscription the ACL refuses answers Redis's
// error and holds no slot.
func TestSubscribeRefused(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxSubscriptions: 1}))
	tok := e.user(t, "app", "k", "~*", "&allowed*", "+@all")
	noperm := `{"error":"NOPERM this user has no permissions to access one of the channels used as arguments"}`
	for _, path := range []string{"/subscribe/secret", "/subscribe/allowed1/secret", "/psubscribe/*", "/psubscribe/allowed*/secret*"} {
		if got := e.refused(t, path, tok); got.Status != http.StatusBadRequest || got.Body != noperm {
			t.Errorf("A subscription the ACL refuses should answer its error.\nPOST %s: want 400 %s, got %d %s", path, noperm, got.Status, got.Body)
		}
	}
	// The only slot is free.
	sub := e.stream(t, "/subscribe/allowed1", tok)
	if ev := next(t, sub.events); sub.status != http.StatusOK || ev != "subscribe,allowed1,1" {
		t.Errorf("A permitted subscription after refused ones: want 200 and subscribe,allowed1,1, got %d %q", sub.status, ev)
	}
}

// TestSubscribeLargeMessage: a message larger than the stream's buffers,
// with line breaks of every kind (a CRLF across the pieces its event is
// written in among them), arrives whole after the stream was quiet for
// longer than the write timeout: each event has WriteTimeout from when its
// writing starts (the first large event after a quiet minute ended the
// stream: its write ran under the deadline of the event before).
func TestSubscribeLargeMessage(t *testing.T) {
	e := newEnv(t, withConfig(Config{WriteTimeout: time.Second}))
	tok := e.user(t, "app", "k", "~*", "&*", "+@all")
	events := sseEvents(t, e, "/subscribe/news", tok)
	if got := next(t, events); got != "subscribe,news,1" {
		t.Fatalf("confirmation: %q", got)
	}
	var msg strings.Builder
	for i := 0; msg.Len() < 100<<10; i++ {
		msg.WriteString([]string{"line\r\n", "x\r", "y\n", strings.Repeat("z", 4090) + "\r\n"}[i%4])
	}
	time.Sleep(1500 * time.Millisecond)
	if r := e.cmd(t, tok, "PUBLISH", "news", msg.String()); r.Body != `{"result":1}` {
		t.Fatalf("PUBLISH: %d %.200s", r.Status, r.Body)
	}
	want := "message,news," + strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(msg.String())
	if got := next(t, events); got != want {
		t.Errorf("the message's event: want %d bytes %.100q, got %d bytes %.100q", len(want), want, len(got), got)
	}
}
