package redis

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

func TestGuard(t *testing.T) {
	l := Limits{MaxBulk: 10, MaxElements: 3, MaxDepth: 2, MaxLine: 16, MaxReply: 300}
	cases := map[string]struct {
		reason string
		stream []string // fed in these pieces
		want   error
	}{
		"Replies": {
			reason: "Replies within the limits, split anywhere, should pass.",
			stream: []string{"+OK\r", "\n:1\r\n$3\r\nab", "c\r\n*2\r\n$-1\r\n*1\r\n-ERR x\r\n", "*0\r\n*-1\r\n"},
		},
		"ManyRepliesAddUp": {
			reason: "The size limit applies to each reply, not to the stream.",
			stream: []string{strings.Repeat("$8\r\n01234567\r\n", 10)},
		},
		"HugeArray": {
			reason: "An array header beyond the element limit should be refused before any element is read.",
			stream: []string{"*10000000000000\r\n"},
			want:   ErrReplyRefused,
		},
		"HugeBulk": {
			reason: "A bulk header beyond the size limit should be refused before its payload is read.",
			stream: []string{"$10000000000000\r\n"},
			want:   ErrReplyRefused,
		},
		"DeepNesting": {
			reason: "Arrays nested beyond the depth limit should be refused.",
			stream: []string{"*1\r\n*1\r\n*1\r\n"},
			want:   ErrReplyRefused,
		},
		"EndlessLine": {
			reason: "A line that never ends should be refused once it is longer than the line limit.",
			stream: []string{"+", strings.Repeat("a", 10), strings.Repeat("a", 10)},
			want:   ErrReplyRefused,
		},
		"LargeReply": {
			reason: "A reply whose parts are each within limits but whose whole is not should be refused.",
			stream: []string{"*3\r\n*1\r\n$10\r\n0123456789\r\n*1\r\n$10\r\n0123456789\r\n*1\r\n$10\r\n0123456789\r\n"},
			want:   ErrReplyRefused,
		},
		"NotRESP": {
			reason: "A peer that does not speak RESP2 should be refused.",
			stream: []string{"HTTP/1.1 400 Bad Request\r\n"},
			want:   ErrReplyRefused,
		},
		"RESP3": {
			reason: "RESP3 types are refused: the provider speaks RESP2.",
			stream: []string{"%1\r\n"},
			want:   ErrReplyRefused,
		},
		"BadLength": {
			reason: "A length that is not a number should be refused.",
			stream: []string{"$x\r\n"},
			want:   ErrReplyRefused,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := newGuard(l)
			var err error
			for _, s := range tc.stream {
				if err = g.feed([]byte(s)); err != nil {
					break
				}
			}
			if diff := cmp.Diff(tc.want, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nfeed(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestHostilePeers points the pool at servers a tenant could run: every
// absurd reply becomes an error, the test process survives, and nothing the
// peer sent reaches the error.
func TestHostilePeers(t *testing.T) {
	cases := map[string]struct {
		reason string
		reply  string
	}{
		"HugeArray": {
			reason: "An array header of 10^13 elements must not make the client allocate the array.",
			reply:  "*10000000000000\r\n",
		},
		"ArrayBeyondMaxAlloc": {
			reason: "An array header of 10^14 elements must not make the client panic (makeslice: len out of range).",
			reply:  "*100000000000000\r\n",
		},
		"HugeBulk": {
			reason: "A bulk header of 10^13 bytes must not make the client allocate the string.",
			reply:  "$10000000000000\r\n",
		},
		"DeepNesting": {
			reason: "Arrays nested a thousand deep must be refused.",
			reply:  strings.Repeat("*1\r\n", 1000),
		},
		"EndlessLine": {
			reason: "A status line that never ends must be refused, not buffered.",
			reply:  "+" + strings.Repeat("banner-secret-", 10000),
		},
		"HTTPServer": {
			reason: "A server that is not Redis must not have its banner echoed to the tenant.",
			reply:  "HTTP/1.1 400 banner-secret\r\nServer: banner-secret\r\n\r\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := testenv.StartFakeRedis(t, tc.reply)
			pool := NewPool()
			t.Cleanup(func() { _ = pool.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _, err := pool.ACL(Credentials{Address: p.Addr, Password: "pw", Restricted: true}).GetUser(ctx, "app")
			if err == nil {
				t.Fatalf("%s\nGetUser(...): want an error, got none", tc.reason)
			}
			if strings.Contains(err.Error(), "banner-secret") {
				t.Errorf("%s\nGetUser(...): the error echoes the peer: %.200q", tc.reason, err)
			}
		})
	}
}

// TestSilentRedis points the pool at a server that accepts connections and
// never answers: waiting for it is bounded by the caller's context, and once
// it timed out it is not asked again until its back-off ends.
func TestSilentRedis(t *testing.T) {
	p := testenv.StartFakeRedis(t, "")
	pool := NewPool()
	t.Cleanup(func() { _ = pool.Close() })
	acl := pool.ACL(Credentials{Address: p.Addr, Password: "pw"})

	order := make(chan string, 2)
	first := make(chan error, 1)
	go func() {
		_, _, err := acl.GetUser(context.Background(), "a")
		order <- "first"
		first <- err
	}()
	<-p.Got // the first request is waiting on the silent server

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := acl.GetUser(ctx, "b")
	order <- "second"
	if err == nil {
		t.Fatal("GetUser(...) while another request waits on a silent Redis: want an error, got none")
	}
	if got := []string{<-order, <-order}; !cmp.Equal(got, []string{"second", "first"}) {
		t.Errorf("GetUser(...): a request with a short context must return before the one holding the silent Redis; order: %v", got)
	}
	if err := <-first; err == nil {
		t.Fatal("GetUser(...) against a silent Redis: want an error, got none")
	}

	conns := p.Conns.Load()
	_, _, err = acl.GetUser(context.Background(), "c")
	if diff := cmp.Diff(ErrUnresponsive, err, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("GetUser(...) right after a timeout: -want, +got:\n%s", diff)
	}
	if p.Conns.Load() != conns {
		t.Error("GetUser(...) right after a timeout dialled the silent Redis again")
	}
}

// TestRefusedBeforeSending checks that credentials that could smuggle
// commands, and endpoints the platform does not allow, fail before anything
// is sent: the peer never sees a connection.
func TestRefusedBeforeSending(t *testing.T) {
	p := testenv.StartFakeRedis(t, "+OK\r\n")
	_, port, _ := net.SplitHostPort(p.Addr)
	cases := map[string]struct {
		reason    string
		endpoints []string
		c         Credentials
		want      error
	}{
		"PasswordWithCRLF": {
			reason: "A password with CR/LF would send more than a password.",
			c:      Credentials{Address: p.Addr, Password: "pw\r\nFLUSHALL"},
		},
		"UsernameWithNewline": {
			reason: "A username with a newline would send more than a username.",
			c:      Credentials{Address: p.Addr, Username: "admin\nx", Password: "pw"},
		},
		"HostWithCRLF": {
			reason: "An endpoint with CR/LF is refused.",
			c:      Credentials{Address: net.JoinHostPort("127.0.0.1\r\nHost: x", port), Password: "pw"},
		},
		"BadPort": {
			reason: "A port that is not 1 to 65535 is refused.",
			c:      Credentials{Address: "127.0.0.1:70000", Password: "pw"},
		},
		"IPOutsideCIDRs": {
			reason: "A restricted address outside the allowed CIDRs is refused before dialling.",
			c:      Credentials{Address: p.Addr, Password: "pw", Restricted: true},
			// 127.0.0.1 is not in 10.0.0.0/8.
			endpoints: []string{"10.0.0.0/8"},
			want:      ErrEndpointRefused,
		},
		"NameOutsideSuffixes": {
			reason:    "A restricted host name matching no suffix, with no CIDR to check its address against, is refused before resolving it.",
			c:         Credentials{Address: net.JoinHostPort("localhost", port), Password: "pw", Restricted: true},
			endpoints: []string{".redis.example.com"},
			want:      ErrEndpointRefused,
		},
		"NameResolvingOutsideCIDRs": {
			reason:    "A restricted host name is checked on the address it resolves to.",
			c:         Credentials{Address: net.JoinHostPort("localhost", port), Password: "pw", Restricted: true},
			endpoints: []string{"10.0.0.0/8"},
			want:      ErrEndpointRefused,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := ParseEndpoints(tc.endpoints)
			if err != nil {
				t.Fatal(err)
			}
			pool := NewPool(WithEndpoints(e))
			t.Cleanup(func() { _ = pool.Close() })
			before := p.Conns.Load()
			_, _, err = pool.ACL(tc.c).GetUser(context.Background(), "app")
			if err == nil {
				t.Fatalf("%s\nGetUser(...): want an error, got none", tc.reason)
			}
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, err, cmpopts.EquateErrors()); diff != "" {
					t.Errorf("%s\nGetUser(...): -want, +got:\n%s", tc.reason, diff)
				}
			}
			if n := p.Conns.Load() - before; n != 0 {
				t.Errorf("%s\nGetUser(...): the peer saw %d connections, want none", tc.reason, n)
			}
		})
	}
}

// TestAllowedEndpoints checks that the endpoint restriction lets through
// what it allows, and applies to restricted credentials only.
func TestAllowedEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs a real redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", "admin")
	_, port, _ := net.SplitHostPort(r.Addr)
	cases := map[string]struct {
		reason    string
		endpoints []string
		c         Credentials
	}{
		"IPInCIDR": {
			reason:    "A restricted address in an allowed CIDR is administered.",
			endpoints: []string{"127.0.0.0/8"},
			c:         Credentials{Address: r.Addr, Password: "admin", Restricted: true},
		},
		"NameResolvingInCIDR": {
			reason:    "A restricted host name resolving into an allowed CIDR is administered.",
			endpoints: []string{"127.0.0.0/8"},
			c:         Credentials{Address: net.JoinHostPort("localhost", port), Password: "admin", Restricted: true},
		},
		"NameWithSuffix": {
			reason:    "A restricted host name with an allowed suffix is administered.",
			endpoints: []string{"localhost"},
			c:         Credentials{Address: net.JoinHostPort("localhost", port), Password: "admin", Restricted: true},
		},
		"Unrestricted": {
			reason:    "Credentials of an instance are not restricted.",
			endpoints: []string{"10.0.0.0/8"},
			c:         Credentials{Address: r.Addr, Password: "admin"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := ParseEndpoints(tc.endpoints)
			if err != nil {
				t.Fatal(err)
			}
			pool := NewPool(WithEndpoints(e))
			t.Cleanup(func() { _ = pool.Close() })
			if _, _, err := pool.ACL(tc.c).GetUser(context.Background(), "app"); err != nil {
				t.Errorf("%s\nGetUser(...): %v", tc.reason, err)
			}
		})
	}
}

func TestParseEndpoints(t *testing.T) {
	_, err := ParseEndpoints([]string{"10.0.0.0/8", ".redis.example.com", "db.internal"})
	if err != nil {
		t.Errorf("ParseEndpoints(...): %v", err)
	}
	for _, bad := range []string{"10.0.0.0/33", "http://x", "a\nb"} {
		if _, err := ParseEndpoints([]string{bad}); err == nil {
			t.Errorf("ParseEndpoints(%q): want an error, got none", bad)
		}
	}
}

// TestPoolEvicts checks that the pool is bounded, and that evicting an entry
// of an unreachable Redis stops the goroutine that keeps redialling it.
func TestPoolEvicts(t *testing.T) {
	now := time.Now()
	pool := NewPool(WithMaxEntries(2), WithIdleTimeout(time.Minute))
	pool.now = func() time.Time { return now }
	t.Cleanup(func() { _ = pool.Close() })

	// Nothing listens on port 1 of loopback: every dial is refused, and
	// after PoolSize failures go-redis starts redialling in the background.
	dead := pool.ACL(Credentials{Address: "127.0.0.1:1", Password: "pw"})
	for range 6 {
		_, _, _ = dead.GetUser(context.Background(), "app")
	}
	testenv.Eventually(t, 2*time.Minute, "a redial goroutine", func() error {
		if !redialling() {
			return errorf("no goroutine redials the unreachable Redis yet")
		}
		return nil
	})

	now = now.Add(2 * time.Minute)
	pool.ACL(Credentials{Address: "127.0.0.1:2", Password: "pw"})
	if n := pool.Evict(); n != 1 {
		t.Errorf("Evict(): want 1 idle entry closed, got %d", n)
	}
	testenv.Eventually(t, 2*time.Minute, "the redial goroutine stopped", func() error {
		if redialling() {
			return errorf("a goroutine still redials the evicted Redis")
		}
		return nil
	})

	for i := range 5 {
		pool.ACL(Credentials{Address: net.JoinHostPort("127.0.0.1", string(rune('3'+i))), Password: "pw"})
	}
	if n := pool.Len(); n != 2 {
		t.Errorf("Len() after 6 distinct Redis servers with a bound of 2: want 2, got %d", n)
	}
}

// redialling reports whether a go-redis pool goroutine redials somewhere.
func redialling() bool {
	b := make([]byte, 1<<20)
	return strings.Contains(string(b[:runtime.Stack(b, true)]), "tryDial")
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
