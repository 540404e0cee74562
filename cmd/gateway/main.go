// Command gateway serves the Upstash REST protocol in front of one Redis:
// every request runs as the Redis ACL user its token names.
package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ai-decenter/redishttp/internal/gateway"

	xperrors "github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// CLI of the gateway. The flag names are a contract: the composition
// function starts the gateway with them. Every flag can also be set through
// its environment variable.
type CLI struct {
	RedisAddress   string `env:"REDIS_ADDRESS"   help:"Redis to serve, as HOST:PORT."                                       required:""`
	Address        string `default:":8080"       env:"ADDRESS"                                                             help:"Where to serve the REST API."`
	MetricsAddress string `default:":8081"       env:"METRICS_ADDRESS"                                                     help:"Where to serve /metrics, /healthz and /readyz."`
	TLSCertFile    string `env:"TLS_CERT_FILE"   help:"Serve the REST API over TLS with this certificate (PEM); needs --tls-key-file." type:"path"`
	TLSKeyFile     string `env:"TLS_KEY_FILE"    help:"The TLS certificate's private key (PEM)."                            type:"path"`

	MaxRequestBytes          int64         `default:"10485760" env:"MAX_REQUEST_BYTES"  help:"Largest request body; larger ones get 413."`
	MaxHeaderBytes           int           `default:"16384"    env:"MAX_HEADER_BYTES"   help:"Largest request line and headers; larger ones get 431 (send large values in the body)."`
	MaxReplyBytes            int64         `default:"67108864" env:"MAX_REPLY_BYTES"    help:"Most bytes one request may read from Redis; more is a JSON error, never an out-of-memory."`
	PoolSize                 int           `default:"256"      env:"POOL_SIZE"          help:"Most connections to Redis for requests (subscriptions have their own)."`
	MaxSubscriptions         int           `default:"1000"     env:"MAX_SUBSCRIPTIONS"  help:"Most concurrent /subscribe and /psubscribe streams."`
	MaxConnectionsPerToken   int           `default:"0"        env:"MAX_CONNECTIONS_PER_TOKEN" help:"Most connections to Redis one token holds at once (0: a quarter of --pool-size, at least 1); its requests over it wait up to 1s, then get 429 with Retry-After."`
	MaxSubscriptionsPerToken int           `default:"0"        env:"MAX_SUBSCRIPTIONS_PER_TOKEN" help:"Most concurrent streams of one token (0: a quarter of --max-subscriptions, at least 1); more get 429."`
	DialTimeout              time.Duration `default:"2s"       env:"DIAL_TIMEOUT"       help:"How long connecting to Redis may take."`
	RequestTimeout           time.Duration `default:"30s"      env:"REQUEST_TIMEOUT"    help:"How long Redis may take to answer one request."`
	MaxBlock                 time.Duration `default:"10s"      env:"MAX_BLOCK"          help:"Longest a blocking command (BLPOP, XREAD BLOCK, WAIT...) may block; 0 or longer timeouts are cut to it."`
	ReadHeaderTimeout        time.Duration `default:"10s"     env:"READ_HEADER_TIMEOUT" help:"How long reading a request's line and headers may take."`
	ReadTimeout              time.Duration `default:"60s"      env:"READ_TIMEOUT"       help:"How long reading a request's body may take."`
	WriteTimeout             time.Duration `default:"60s"      env:"WRITE_TIMEOUT"      help:"How long writing one response, or one event of a subscription stream, may take."`
	IdleTimeout              time.Duration `default:"120s"     env:"IDLE_TIMEOUT"       help:"How long a keep-alive connection may wait for its next request."`
	ShutdownTimeout          time.Duration `default:"30s"      env:"SHUTDOWN_TIMEOUT"   help:"How long in-flight requests may take to finish on SIGTERM."`

	Debug bool `env:"DEBUG" help:"Log at debug level." short:"d"`
}

// Run the gateway until SIGTERM or SIGINT.
func (c *CLI) Run() error {
	log := logging.NewLogrLogger(zap.New(zap.UseDevMode(c.Debug)).WithName("gateway"))
	if c.MaxBlock >= c.RequestTimeout {
		return xperrors.New("cannot use --max-block: it must be shorter than --request-timeout")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return xperrors.New("cannot serve TLS: set both --tls-cert-file and --tls-key-file")
	}

	// Requests allocate little but often: with Go's default GOGC=100 the
	// collector took a tenth of the CPU under load. GOGC and GOMEMLIMIT
	// still win when set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	limits := gateway.DefaultLimits
	limits.MaxReplyBytes = c.MaxReplyBytes
	rds := gateway.NewRedis(c.RedisAddress, c.PoolSize, c.DialTimeout, c.RequestTimeout, limits, gateway.WithConnsPerToken(c.MaxConnectionsPerToken))
	defer rds.Close()
	srv := gateway.NewServer(rds, gateway.Config{
		MaxRequestBytes:          c.MaxRequestBytes,
		MaxHeaderBytes:           c.MaxHeaderBytes,
		ReadHeaderTimeout:        c.ReadHeaderTimeout,
		ReadTimeout:              c.ReadTimeout,
		WriteTimeout:             c.WriteTimeout,
		IdleTimeout:              c.IdleTimeout,
		Policy:                   gateway.Policy{MaxBlock: c.MaxBlock},
		MaxSubscriptions:         c.MaxSubscriptions,
		MaxSubscriptionsPerToken: c.MaxSubscriptionsPerToken,
		Log:                      log,
		Metrics:                  gateway.NewMetrics(reg),
	})

	api := srv.HTTPServer()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := rds.Ping(ctx); err != nil {
			http.Error(w, "redis is not reachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	ops := &http.Server{Addr: c.MetricsAddress, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var lc net.ListenConfig
	apiLn, err := lc.Listen(ctx, "tcp", c.Address)
	if err != nil {
		return xperrors.Wrapf(err, "cannot listen on %q", c.Address)
	}
	opsLn, err := lc.Listen(ctx, "tcp", c.MetricsAddress)
	if err != nil {
		return xperrors.Wrapf(err, "cannot listen on %q", c.MetricsAddress)
	}
	errs := make(chan error, 2)
	go func() {
		if c.TLSCertFile != "" {
			errs <- api.ServeTLS(apiLn, c.TLSCertFile, c.TLSKeyFile)
			return
		}
		errs <- api.Serve(apiLn)
	}()
	go func() { errs <- ops.Serve(opsLn) }()
	log.Info("Serving the REST API", "address", apiLn.Addr().String(), "metrics-address", opsLn.Addr().String(), "redis-address", c.RedisAddress, "tls", c.TLSCertFile != "")

	select {
	case err := <-errs:
		return xperrors.Wrap(err, "cannot serve")
	case <-ctx.Done():
	}
	log.Info("Shutting down: finishing in-flight requests", "timeout", c.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	err = api.Shutdown(sctx)
	_ = ops.Shutdown(sctx)
	if err != nil {
		return xperrors.Wrap(err, "cannot shut down gracefully")
	}
	return nil
}

func main() {
	ctx := kong.Parse(&CLI{}, kong.Name("gateway"), kong.Description("Upstash-compatible REST access to a Redis, authenticated by Redis ACL users."))
	ctx.FatalIfErrorf(ctx.Run())
}
