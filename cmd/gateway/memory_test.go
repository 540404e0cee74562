package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// podLimit is the gateway's default memory limit in a composed pod; the
// Deployment sets GOMEMLIMIT to 90% of it.
const podLimit = 256 << 20

// TestMemoryUnderAttack runs the gateway as a child process, as the pod
// runs it (GOMEMLIMIT at 90% of the pod's limit, the default flags), while
// one token reads a 28 MiB value of NUL bytes (168 MiB as JSON; a request
// reads at most a quarter of --max-memory, 28.8 MiB in the pod) from
// several connections at once and posts 10 MiB pipelines of [1],[1],...
// Another token's requests keep being answered with its own value, and
// the process's peak resident memory (VmHWM) stays under the pod's limit.
func TestMemoryUnderAttack(t *testing.T) {
	r, api, gw := startAttacked(t)
	attacker, victim := contract.Token("attacker", "ka"), contract.Token("victim", "kv")
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "pw"})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	if err := admin.Set(ctx, "a:nul", strings.Repeat("\x00", 28<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}

	postAs := func(token, path string, body []byte) (int, string, error) { return post(ctx, api, token, path, body) }
	pipeline := make([]byte, 0, 10<<20)
	pipeline = append(pipeline, '[')
	for len(pipeline) < 10<<20-8 {
		pipeline = append(pipeline, "[1],"...)
	}
	pipeline = append(pipeline, "[1]]"...)

	var attacks sync.WaitGroup
	done := make(chan struct{})
	for i := range 4 {
		attacks.Go(func() {
			for range 2 {
				if i%2 == 0 {
					if code, body, err := postAs(attacker, "/", []byte(`["GET","a:nul"]`)); err == nil && code != http.StatusOK && code != http.StatusServiceUnavailable {
						t.Errorf("the attacker's GET of 28 MiB: want 200 or 503, got %d %.100s", code, body)
					}
				} else {
					_, _, _ = postAs(attacker, "/pipeline", pipeline)
				}
			}
		})
	}
	go func() { attacks.Wait(); close(done) }()
	served := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		code, body, err := postAs(victim, "/", []byte(`["GET","v:k"]`))
		if err != nil || code != http.StatusOK || body != `{"result":"victim"}` {
			t.Fatalf("the victim's GET during the attack: %d %.200s %v", code, body, err)
		}
		served++
	}
	hwm := peakMemory(t, gw.Process.Pid)
	t.Logf("peak resident memory %d MiB under attack; %d victim requests served", hwm>>20, served)
	if hwm >= podLimit {
		t.Errorf("the gateway's peak resident memory (VmHWM) was %d MiB, want under the pod's limit of %d MiB", hwm>>20, podLimit>>20)
	}
}

// TestMemorySharedFairly: two tokens together could hold the whole memory
// for requests in flight (a token's share was at least --max-reply-bytes,
// 64 MiB of the pod's 115 MiB), and every other token got 503. Each of two
// attacker tokens reads a 14 MiB value of NUL bytes (84 MiB as JSON) on
// five connections and never reads the responses, so their replies stay
// held: each gets what its share holds (two), the rest 503 (one of 20 MiB
// too: it was "Redis is unavailable"); a victim token
// is then still served, a value as large as theirs included; a value
// above what a request may read (a quarter of --max-memory) is a 400
// naming that limit; the process's peak resident memory stays under the
// pod's limit.
func TestMemorySharedFairly(t *testing.T) {
	// The attackers' replies stay held until the end, however slow this
	// machine: a response not written within --write-timeout gives its
	// memory back.
	r, api, gw := startAttacked(t, "--write-timeout=10m")
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "pw"})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()
	const size = 14 << 20
	for _, c := range [][]any{
		{"ACL", "SETUSER", "attacker2", "on", ">kb", "~b:*", "+@all"},
		{"SET", "a:nul", strings.Repeat("\x00", size)},
		{"SET", "b:nul", strings.Repeat("\x00", size)},
		{"SET", "a:huge", strings.Repeat("x", 40<<20)},
		{"SET", "a:more", strings.Repeat("x", 20<<20)},
		{"SET", "v:big", strings.Repeat("v", size)},
	} {
		if err := admin.Do(ctx, c...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	attackers := map[string]string{"a:nul": contract.Token("attacker", "ka"), "b:nul": contract.Token("attacker2", "kb")}
	victim := contract.Token("victim", "kv")

	// Every attacker request answered: its reply held, or refused.
	got := map[string][]int{}
	var mu sync.Mutex
	var asked sync.WaitGroup
	for key, token := range attackers {
		for range 5 {
			c, err := net.Dial("tcp", api)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			body := fmt.Sprintf(`["GET",%q]`, key)
			if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", token, len(body), body); err != nil {
				t.Fatal(err)
			}
			asked.Go(func() {
				_ = c.SetReadDeadline(time.Now().Add(time.Minute))
				// The status line only: the reply stays held while its
				// body is not read.
				line, _ := bufio.NewReader(c).ReadString('\n')
				status := 0
				if f := strings.Fields(line); len(f) > 1 {
					status, _ = strconv.Atoi(f[1])
				}
				mu.Lock()
				got[key] = append(got[key], status)
				mu.Unlock()
			})
		}
	}
	asked.Wait()
	for key := range got {
		slices.Sort(got[key])
	}
	want := map[string][]int{"a:nul": {200, 200, 503, 503, 503}, "b:nul": {200, 200, 503, 503, 503}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the attackers' GETs of 14 MiB on five connections each, never read: -want, +got:\n%s", diff)
	}

	// While the attackers hold their replies.
	if code, body, err := post(ctx, api, victim, "/", []byte(`["GET","v:k"]`)); err != nil || code != http.StatusOK || body != `{"result":"victim"}` {
		t.Errorf("the victim's GET while two tokens hold their shares: want 200 {\"result\":\"victim\"}, got %d %.200s %v", code, body, err)
	}
	if code, body, err := post(ctx, api, victim, "/", []byte(`["GET","v:big"]`)); err != nil || code != http.StatusOK || !strings.HasPrefix(body, `{"result":"vvvv`) {
		t.Errorf("the victim's GET of 14 MiB while two tokens hold their shares: want 200, got %d %.200s %v", code, body, err)
	}
	// Over its share, with a reply too large to read and drop (above 16
	// MiB): the connection is closed, the client told why (it was "Redis
	// is unavailable").
	const busy = `{"error":"the gateway is short of memory for replies in flight: retry later, or read less per request"}`
	if code, body, err := post(ctx, api, contract.Token("attacker", "ka"), "/", []byte(`["GET","a:more"]`)); err != nil || code != http.StatusServiceUnavailable || body != busy {
		t.Errorf("an attacker's GET of 20 MiB while it holds its share: want 503 %s, got %d %.200s %v", busy, code, body, err)
	}
	// GOMEMLIMIT as startAttacked sets it, --max-memory half of it, a
	// request a quarter of that.
	maxRead := int64(podLimit*9/10) / 2 / 4
	wantTooLarge := fmt.Sprintf(`{"error":"ERR reply too large for the gateway: a request may read %d bytes (its replies, and 64 per array element): read less per request"}`, maxRead)
	if code, body, err := post(ctx, api, contract.Token("attacker", "ka"), "/", []byte(`["GET","a:huge"]`)); err != nil || code != http.StatusBadRequest || body != wantTooLarge {
		t.Errorf("a GET of 40 MiB: want 400 %s, got %d %.200s %v", wantTooLarge, code, body, err)
	}
	hwm := peakMemory(t, gw.Process.Pid)
	t.Logf("peak resident memory %d MiB with two tokens holding their shares", hwm>>20)
	if hwm >= podLimit {
		t.Errorf("the gateway's peak resident memory (VmHWM) was %d MiB, want under the pod's limit of %d MiB", hwm>>20, podLimit>>20)
	}
}

// startAttacked builds the gateway and runs it as the pod does in front of
// a redis-server with two users: attacker (keys and channels a:*, token
// contract.Token("attacker", "ka")) and victim (v:*, key v:k = "victim",
// token contract.Token("victim", "kv")), with the pod's flags and args.
// It returns the server, the gateway's address and its process once it
// serves.
func startAttacked(t *testing.T, args ...string) (*testenv.Redis, string, *exec.Cmd) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the gateway, starts redis-server")
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("cannot build the gateway: %v\n%s", err, out)
	}
	r := testenv.StartRedis(t, "--requirepass", "pw", "--proto-max-bulk-len", "128mb")
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "pw"})
	defer admin.Close()
	ctx := context.Background()
	for _, u := range [][]any{
		{"ACL", "SETUSER", "attacker", "on", ">ka", "~a:*", "&a:*", "+@all"},
		{"ACL", "SETUSER", "victim", "on", ">kv", "~v:*", "+@all"},
		{"SET", "v:k", "victim"},
	} {
		if err := admin.Do(ctx, u...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	api := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	gw := exec.Command(bin, append([]string{"--redis-address", r.Addr, "--address", api,
		"--metrics-address", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}, args...)...)
	gw.Env = append(os.Environ(), "GOMEMLIMIT="+strconv.Itoa(podLimit*9/10))
	gw.Stdout, gw.Stderr = io.Discard, io.Discard
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Process.Kill(); _ = gw.Wait() })
	testenv.Eventually(t, 10*time.Second, "the gateway answering", func() error {
		if code, body, err := post(ctx, api, contract.Token("victim", "kv"), "/", []byte(`["GET","v:k"]`)); err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %w", code, body, err)
		}
		return nil
	})
	return r, api, gw
}

// post posts body to path of the gateway at api with token, and returns the
// status and the first KiB of the response's body, read in full.
func post(ctx context.Context, api, token, path string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+api+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	// Read a large body without keeping it.
	var head bytes.Buffer
	_, err = io.Copy(io.Discard, io.TeeReader(io.LimitReader(res.Body, 1<<10), &head))
	if err == nil {
		_, err = io.Copy(io.Discard, res.Body)
	}
	return res.StatusCode, head.String(), err
}

// TestBodiesUnderAttack: one token sends 10 MiB bodies on 40 connections at
// once, all but their last byte, and holds them. The bodies in flight are
// bounded by the gateway's memory, fairly: the attacker's requests beyond
// its share are refused unread (503) and its connections closed, another
// token's requests are answered, and the process's peak resident memory
// stays under the pod's limit. It was 400 MiB and more before: each body
// was read into memory whole before any bound applied.
func TestBodiesUnderAttack(t *testing.T) {
	_, api, gw := startAttacked(t)
	ctx := context.Background()
	const size = 10 << 20
	body := bytes.Repeat([]byte("[1],"), size/4)
	head := fmt.Sprintf("POST /pipeline HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", contract.Token("attacker", "ka"), size)
	var held sync.WaitGroup
	conns := make(chan net.Conn, 40)
	for range cap(conns) {
		held.Go(func() {
			c, err := net.Dial("tcp", api)
			if err != nil {
				return
			}
			conns <- c
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			// Refused bodies end in an error: the gateway closed the
			// connection.
			_, _ = c.Write(append([]byte(head), body[:size-1]...))
		})
	}
	held.Wait()
	close(conns)
	code, got, err := post(ctx, api, contract.Token("victim", "kv"), "/", []byte(`["GET","v:k"]`))
	if err != nil || code != http.StatusOK || got != `{"result":"victim"}` {
		t.Errorf("the victim's GET while the attacker's bodies are held: %d %.200s %v", code, got, err)
	}
	hwm := peakMemory(t, gw.Process.Pid)
	t.Logf("peak resident memory %d MiB with 40 bodies of 10 MiB held", hwm>>20)
	if hwm >= podLimit {
		t.Errorf("the gateway's peak resident memory (VmHWM) was %d MiB, want under the pod's limit of %d MiB", hwm>>20, podLimit>>20)
	}
	for c := range conns {
		_ = c.Close()
	}
}

// TestStreamsUnderAttack: one token holds 16 subscription streams whose
// client reads nothing, and publishes one message of 4 MiB of line breaks
// (each one "\ndata: " in an event, 28 MiB). The messages the streams
// read are memory of the process like replies: bounded, fairly (streams
// beyond the token's share end), so another token's requests are
// answered and the process's peak resident memory stays under the pod's
// limit. Each stream read its message and built its event whole, uncharged,
// before: 344 MiB.
func TestStreamsUnderAttack(t *testing.T) {
	r, api, gw := startAttacked(t)
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "pw"})
	t.Cleanup(func() { _ = admin.Close() })
	const streams = 32
	for range streams {
		c, err := net.Dial("tcp", api)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "POST /subscribe/a:ch HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n", contract.Token("attacker", "ka")); err != nil {
			t.Fatal(err)
		}
		// Read up to the confirmation, then nothing more.
		var got []byte
		for b := make([]byte, 1); !bytes.Contains(got, []byte("subscribe,a:ch,1")); {
			if _, err := c.Read(b); err != nil {
				t.Fatalf("the attacker's stream: %v after %q", err, got)
			}
			got = append(got, b[0])
		}
	}
	if err := admin.Publish(ctx, "a:ch", strings.Repeat("\n", 4<<20)).Err(); err != nil {
		t.Fatal(err)
	}
	// Every stream read its message from Redis, or ended.
	testenv.Eventually(t, 30*time.Second, "the streams reading the message", func() error {
		list, err := admin.ClientList(ctx).Result()
		if err != nil {
			return err
		}
		for l := range strings.SplitSeq(list, "\n") {
			if strings.Contains(l, " user=attacker ") && strings.Contains(l, " flags=P ") && !strings.Contains(l, " omem=0 ") {
				return fmt.Errorf("a stream's message still in Redis: %s", l)
			}
		}
		return nil
	})
	code, got, err := post(ctx, api, contract.Token("victim", "kv"), "/", []byte(`["GET","v:k"]`))
	if err != nil || code != http.StatusOK || got != `{"result":"victim"}` {
		t.Errorf("the victim's GET while the attacker's streams hold their message: %d %.200s %v", code, got, err)
	}
	hwm := peakMemory(t, gw.Process.Pid)
	t.Logf("peak resident memory %d MiB with %d streams of a 4 MiB message", hwm>>20, streams)
	if hwm >= podLimit {
		t.Errorf("the gateway's peak resident memory (VmHWM) was %d MiB, want under the pod's limit of %d MiB", hwm>>20, podLimit>>20)
	}
}

// peakMemory returns the peak resident memory (VmHWM) of process pid.
func peakMemory(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
