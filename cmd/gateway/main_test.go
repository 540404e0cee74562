package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/fn"
	"github.com/ai-decenter/redishttp/internal/gateway"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestComposedArgs runs the arguments the composition function gives the
// gateway's Deployment through the gateway's own flag parser: a flag
// renamed on either side fails here, not in a cluster.
func TestComposedArgs(t *testing.T) {
	var got CLI
	p, err := kong.New(&got, options()...)
	if err != nil {
		t.Fatalf("cannot build the flag parser: %v", err)
	}
	if _, err := p.Parse(fn.GatewayArgs("r-redis.ns.svc.cluster.local:6379")); err != nil {
		t.Fatalf("The function's arguments for the gateway should parse: %v", err)
	}
	// Everything the function does not set has the gateway's defaults.
	want := CLI{
		RedisAddress:      "r-redis.ns.svc.cluster.local:6379",
		Address:           fmt.Sprintf(":%d", contract.GatewayPort),
		MetricsAddress:    fmt.Sprintf(":%d", contract.GatewayMetricsPort),
		MaxRequestBytes:   gateway.DefaultMaxRequestBytes,
		MaxHeaderBytes:    gateway.DefaultMaxHeaderBytes,
		MaxReplyBytes:     gateway.DefaultLimits.MaxReplyBytes,
		MaxCommands:       gateway.DefaultMaxCommands,
		MaxArgs:           gateway.DefaultMaxArgs,
		PoolSize:          gateway.DefaultPoolSize,
		MaxSubscriptions:  gateway.DefaultMaxSubscriptions,
		DialTimeout:       gateway.DefaultDialTimeout,
		RequestTimeout:    gateway.DefaultRequestTimeout,
		MaxBlock:          gateway.DefaultMaxBlock,
		ReadHeaderTimeout: gateway.DefaultReadHeaderTimeout,
		ReadTimeout:       gateway.DefaultReadTimeout,
		WriteTimeout:      gateway.DefaultWriteTimeout,
		IdleTimeout:       gateway.DefaultIdleTimeout,
		ShutdownTimeout:   30 * time.Second,
		MetricsUsers:      gateway.DefaultTopUsers,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("The function's arguments for the gateway: -want, +got:\n%s", diff)
	}
}

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
		MaxRequestBytes: 10 << 20, MaxHeaderBytes: 16 << 10, MaxReplyBytes: 64 << 20, PoolSize: 8, MaxSubscriptions: 10,
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
	// And a subscription stream is open: it ends.
	sreq, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+api+"/subscribe/chat", strings.NewReader("[]"))
	sreq.Header.Set("Authorization", "Bearer "+contract.Token(contract.AdminUser, "pw"))
	sres, err := http.DefaultClient.Do(sreq) //nolint:bodyclose // The goroutine reading the stream closes it.
	if err != nil {
		t.Fatalf("POST /subscribe/chat: %v", err)
	}
	streamEnded := make(chan error, 1)
	go func() {
		defer sres.Body.Close()
		if sres.StatusCode != http.StatusOK {
			streamEnded <- fmt.Errorf("want 200, got %d", sres.StatusCode)
			return
		}
		_, err := io.ReadAll(sres.Body)
		streamEnded <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-streamEnded:
		if err != nil {
			t.Errorf("subscription stream at shutdown: want a complete response, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("subscription stream still open 5s after SIGTERM")
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

// TestRunTLS serves the REST API over TLS with the certificate flags, and a
// client that trusts only that certificate runs a command through it.
func TestRunTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", "pw")
	certFile, keyFile, roots := testenv.SelfSigned(t, t.TempDir())
	api := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c := &CLI{
		RedisAddress: r.Addr, Address: api, MetricsAddress: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		TLSCertFile: certFile, TLSKeyFile: keyFile,
		MaxRequestBytes: 10 << 20, MaxHeaderBytes: 16 << 10, MaxReplyBytes: 64 << 20, PoolSize: 8, MaxSubscriptions: 10,
		DialTimeout: time.Second, RequestTimeout: 10 * time.Second, MaxBlock: 2 * time.Second, ShutdownTimeout: 10 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- c.Run() }()
	t.Cleanup(func() {
		_ = syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
		<-done
	})

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	testenv.Eventually(t, 10*time.Second, "PING over TLS", func() error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+api+"/", strings.NewReader(`["PING"]`))
		req.Header.Set("Authorization", "Bearer "+contract.Token(contract.AdminUser, "pw"))
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || string(b) != `{"result":"PONG"}` {
			return fmt.Errorf("%d %s", res.StatusCode, b)
		}
		return nil
	})
}
