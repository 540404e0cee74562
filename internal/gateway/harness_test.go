package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

const adminPassword = "admin-password"

// An env is a real redis-server with a password on its default user (as
// the composition function configures every instance) and a gateway in
// front of it.
type env struct {
	redis *testenv.Redis
	admin *goredis.Client
	rds   *Redis
	srv   *Server
	// url is the gateway's base URL.
	url string
}

type envOption func(*envConfig)

type envConfig struct {
	poolSize int
	limits   Limits
	cfg      Config
	timeout  time.Duration
	redis    []RedisOption
}

func withPoolSize(n int) envOption    { return func(c *envConfig) { c.poolSize = n } }
func withLimits(l Limits) envOption   { return func(c *envConfig) { c.limits = l } }
func withConfig(cfg Config) envOption { return func(c *envConfig) { c.cfg = cfg } }

func withTimeout(d time.Duration) envOption { return func(c *envConfig) { c.timeout = d } }

func withRedisOptions(o ...RedisOption) envOption {
	return func(c *envConfig) { c.redis = append(c.redis, o...) }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	c := envConfig{poolSize: 16, limits: DefaultLimits, timeout: 10 * time.Second, cfg: Config{Policy: Policy{MaxBlock: 2 * time.Second}}}
	for _, o := range opts {
		o(&c)
	}
	e := &env{redis: testenv.StartRedis(t, "--requirepass", adminPassword)}
	e.admin = goredis.NewClient(&goredis.Options{Addr: e.redis.Addr, Password: adminPassword, MaxRetries: -1})
	t.Cleanup(func() { _ = e.admin.Close() })
	e.rds = NewRedis(e.redis.Addr, c.poolSize, time.Second, c.timeout, c.limits, c.redis...)
	t.Cleanup(e.rds.Close)
	e.srv = NewServer(e.rds, c.cfg)
	e.url = serve(t, e.srv)
	return e
}

// serve serves s's REST API on a free local port, as cmd/gateway does, and
// returns its base URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	hs := s.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Shutdown(context.Background()) })
	return "http://" + ln.Addr().String()
}

// user creates an ACL user with the given key and rules, and returns its
// token.
func (e *env) user(t *testing.T, name, key string, rules ...string) string {
	t.Helper()
	args := []any{"ACL", "SETUSER", name, "reset", "on", ">" + key}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := e.admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("cannot create ACL user %q: %v", name, err)
	}
	return contract.Token(name, key)
}

func adminToken() string { return contract.Token(contract.AdminUser, adminPassword) }

// A response is what the gateway answered.
type response struct {
	Status int
	Body   string
	Header http.Header
}

// do sends a request with the token as a bearer token (none when empty).
func (e *env) do(t *testing.T, method, path, token string, body []byte, header ...string) response {
	t.Helper()
	var rb io.Reader
	if body != nil {
		rb = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rb)
	if err != nil {
		t.Fatalf("cannot build request: %v", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("cannot read response: %v", err)
	}
	return response{Status: res.StatusCode, Body: string(b), Header: res.Header}
}

// cmd posts a JSON command to /.
func (e *env) cmd(t *testing.T, token string, args ...any) response {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatalf("cannot encode %v: %v", args, err)
	}
	return e.do(t, http.MethodPost, "/", token, b)
}

// get reads a key as the admin, "" when it does not exist.
func (e *env) get(t *testing.T, key string) string {
	t.Helper()
	v, err := e.admin.Get(context.Background(), key).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		t.Fatalf("cannot GET %q: %v", key, err)
	}
	return v
}

func (e *env) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := e.admin.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("cannot EXISTS %q: %v", key, err)
	}
	return n == 1
}

func isJSONError(body string) bool {
	var v struct {
		Error string `json:"error"`
	}
	return json.Unmarshal([]byte(body), &v) == nil && v.Error != "" && strings.HasPrefix(body, `{"error":`)
}
