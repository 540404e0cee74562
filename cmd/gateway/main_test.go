package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestRun runs the gateway as main does, with the flags the platform
// starts it with, and stops it with SIGTERM while a request is in flight.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", "pw")
	api := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ops := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c := &CLI{
		RedisAddress: r.Addr, Address: api, MetricsAddress: ops,
		MaxRequestBytes: 10 << 20, MaxReplyBytes: 64 << 20, PoolSize: 8, MaxSubscriptions: 10,
		DialTimeout: time.Second, RequestTimeout: 10 * time.Second, MaxBlock: 2 * time.Second, ShutdownTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- c.Run() }()

	get := func(url string) (int, string, error) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+contract.Token(contract.AdminUser, "pw"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}
	testenv.Eventually(t, 10*time.Second, "readyz", func() error {
		code, body, err := get("http://" + ops + "/readyz")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %w", code, body, err)
		}
		return nil
	})
	if code, _, err := get("http://" + ops + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz: want 200, got %d %v", code, err)
	}
	if code, body, _ := get("http://" + api + "/set/k/v"); code != http.StatusOK {
		t.Fatalf("GET /set/k/v: want 200, got %d %s", code, body)
	}
	if code, body, _ := get("http://" + ops + "/metrics"); code != http.StatusOK || !strings.Contains(body, "redishttp_gateway_requests_total") {
		t.Errorf("/metrics: want 200 with the gateway's metrics, got %d", code)
	}

	// A request blocking for a second is in flight when SIGTERM arrives:
	// it finishes with its answer, then Run returns.
	type result struct {
		code int
		body string
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		code, body, err := get("http://" + api + "/blpop/empty/1")
		inflight <- result{code, body, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	got := <-inflight
	if got.err != nil || got.code != http.StatusOK || got.body != `{"result":null}` {
		t.Errorf("in-flight request during shutdown: want 200 {\"result\":null}, got %d %q %v", got.code, got.body, got.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after SIGTERM")
	}
	r.Stop()

	// Redis gone: /readyz says so.
	c2 := *c
	c2.Address = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c2.MetricsAddress = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	go func() { done <- c2.Run() }()
	testenv.Eventually(t, 10*time.Second, "readyz answering 503 without Redis", func() error {
		code, _, err := get("http://" + c2.MetricsAddress + "/readyz")
		if err != nil || code != http.StatusServiceUnavailable {
			return fmt.Errorf("%d %w", code, err)
		}
		return nil
	})
	_ = syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	<-done
}
