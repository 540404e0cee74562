// Command gateway serves the Upstash REST protocol in front of one Redis:
// every request runs as the Redis ACL user its token names.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/gateway"
	"github.com/ai-decenter/redishttp/internal/version"

	xperrors "github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// CLI of the gateway. The names of the flags the composition function sets
// are a contract (contract.GatewayFlag*, checked by TestComposedArgs).
// Every flag can also be set through its environment variable; defaults
// come from where they are defined (see defaults).
type CLI struct {
	RedisAddress   string `env:"REDIS_ADDRESS"               help:"Redis to serve, as HOST:PORT."                                       required:""`
	Address        string `default:"${address}"              env:"ADDRESS"                                                             help:"Where to serve the REST API."`
	MetricsAddress string `default:"${metrics_address}"      env:"METRICS_ADDRESS"                                                     help:"Where to serve /metrics, /healthz and /readyz."`
	TLSCertFile    string `env:"TLS_CERT_FILE"               help:"Serve the REST API over TLS with this certificate (PEM); needs --tls-key-file." type:"path"`
	TLSKeyFile     string `env:"TLS_KEY_FILE"                help:"The TLS certificate's private key (PEM)."                            type:"path"`

	MaxRequestBytes          int64         `default:"${max_request_bytes}"   env:"MAX_REQUEST_BYTES"           help:"Largest request body; larger ones get 413."`
	MaxHeaderBytes           int           `default:"${max_header_bytes}"    env:"MAX_HEADER_BYTES"            help:"Largest request line and headers; larger ones get 431 (send large values in the body)."`
	MaxReplyBytes            int64         `default:"${max_reply_bytes}"     env:"MAX_REPLY_BYTES"             help:"Most bytes one request may read from Redis, at most a quarter of --max-memory; more is a JSON error, never an out-of-memory."`
	MaxMemory                int64         `default:"0"                      env:"MAX_MEMORY"                  help:"Most bytes the bodies and replies of all requests in flight may hold (0: half of GOMEMLIMIT, or 256 MiB without it); over it a request gets 503 with Retry-After. One token holds at most a quarter of it; the last quarter is kept for tokens holding at most a sixteenth."`
	MaxConnections           int           `default:"0"                      env:"MAX_CONNECTIONS"             help:"Most connections the REST API keeps open, idle ones included (0: the memory GOMEMLIMIT leaves outside --max-memory at 32 KiB a connection, at least 64; 4096 without GOMEMLIMIT); a connection over it closes the one idle the longest (no request in progress), or, every one busy, gets 503 with Retry-After and is closed (over TLS: closed before its handshake); one token keeps at most a quarter busy (429)."`
	MaxCommands              int           `default:"${max_commands}"        env:"MAX_COMMANDS"                help:"Most commands in one /pipeline or /multi-exec request; more get 400."`
	MaxArgs                  int           `default:"${max_args}"            env:"MAX_ARGS"                    help:"Most arguments in one request, all its commands together; more get 400."`
	PoolSize                 int           `default:"${pool_size}"           env:"POOL_SIZE"                   help:"Most connections to Redis for requests (subscriptions have their own)."`
	MaxConnectionsPerToken   int           `default:"0"                      env:"MAX_CONNECTIONS_PER_TOKEN"   help:"Most connections to Redis one token holds at once (0: a quarter of --pool-size, at least 1); once tokens hold three times it, only tokens holding under a sixteenth of --pool-size take more. Requests over either wait up to 1s, then get 429 with Retry-After."`
	MaxSubscriptions         int           `default:"${max_subscriptions}"   env:"MAX_SUBSCRIPTIONS"           help:"Most concurrent /subscribe and /psubscribe streams."`
	MaxSubscriptionsPerToken int           `default:"0"                      env:"MAX_SUBSCRIPTIONS_PER_TOKEN" help:"Most concurrent streams of one token (0: a quarter of --max-subscriptions, at least 1); more get 429."`
	DialTimeout              time.Duration `default:"${dial_timeout}"        env:"DIAL_TIMEOUT"                help:"How long connecting to Redis may take."`
	RequestTimeout           time.Duration `default:"${request_timeout}"     env:"REQUEST_TIMEOUT"             help:"How long Redis may take to answer one request."`
	MaxBlock                 time.Duration `default:"${max_block}"           env:"MAX_BLOCK"                   help:"Longest a blocking command (BLPOP, XREAD BLOCK, WAIT...) may block; 0 or longer timeouts are cut to it."`
	ReadHeaderTimeout        time.Duration `default:"${read_header_timeout}" env:"READ_HEADER_TIMEOUT"         help:"How long reading a request's line and headers may take."`
	ReadTimeout              time.Duration `default:"${read_timeout}"        env:"READ_TIMEOUT"                help:"How long reading a request's body may take."`
	WriteTimeout             time.Duration `default:"${write_timeout}"       env:"WRITE_TIMEOUT"               help:"How long writing one response, or one event of a subscription stream, may take."`
	IdleTimeout              time.Duration `default:"${idle_timeout}"        env:"IDLE_TIMEOUT"                help:"How long a keep-alive connection may wait for its next request."`
	ShutdownTimeout          time.Duration `default:"30s"                    env:"SHUTDOWN_TIMEOUT"            help:"How long in-flight requests may take to finish on SIGTERM."`
	MetricsUsers             int           `default:"${metrics_users}"       env:"METRICS_USERS"               help:"How many ACL users (the busiest, chosen again every minute) get their own label in the per-user metrics; the others are counted as \"other\"."`

	Debug   bool         `env:"DEBUG" help:"Log at debug level." short:"d"`
	Version version.Flag `help:"Print the version and exit."`
}

// defaults are the flags' defaults, each taken from the one place that
// defines it: the gateway's Default* and the contract's ports.
func defaults() kong.Vars {
	return kong.Vars{
		"address":             fmt.Sprintf(":%d", contract.GatewayPort),
		"metrics_address":     fmt.Sprintf(":%d", contract.GatewayMetricsPort),
		"max_request_bytes":   strconv.Itoa(gateway.DefaultMaxRequestBytes),
		"max_header_bytes":    strconv.Itoa(gateway.DefaultMaxHeaderBytes),
		"max_reply_bytes":     strconv.FormatInt(gateway.DefaultLimits.MaxReplyBytes, 10),
		"pool_size":           strconv.Itoa(gateway.DefaultPoolSize),
		"max_commands":        strconv.Itoa(gateway.DefaultMaxCommands),
		"max_args":            strconv.Itoa(gateway.DefaultMaxArgs),
		"max_subscriptions":   strconv.Itoa(gateway.DefaultMaxSubscriptions),
		"dial_timeout":        gateway.DefaultDialTimeout.String(),
		"request_timeout":     gateway.DefaultRequestTimeout.String(),
		"max_block":           gateway.DefaultMaxBlock.String(),
		"read_header_timeout": gateway.DefaultReadHeaderTimeout.String(),
		"read_timeout":        gateway.DefaultReadTimeout.String(),
		"write_timeout":       gateway.DefaultWriteTimeout.String(),
		"idle_timeout":        gateway.DefaultIdleTimeout.String(),
		"metrics_users":       strconv.Itoa(gateway.DefaultTopUsers),
	}
}

// options are kong's options for the gateway's command line.
func options() []kong.Option {
	return []kong.Option{
		kong.Name("gateway"),
		kong.Description("Upstash-compatible REST access to a Redis, authenticated by Redis ACL users."),
		defaults(),
	}
}

// Run the gateway until SIGTERM or SIGINT.
func (c *CLI) Run() error {
	log := logging.NewLogrLogger(zap.New(zap.UseDevMode(c.Debug)).WithName("gateway"))
	log.Info("Starting the gateway", "version", version.Version)
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
	// debug.SetMemoryLimit(-1) reads GOMEMLIMIT, which the composed
	// Deployment sets to 90% of the pod's memory limit.
	memLimit := debug.SetMemoryLimit(-1)
	if c.MaxMemory <= 0 {
		c.MaxMemory = gateway.DefaultMaxMemory(memLimit)
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = gateway.DefaultMaxConnections(memLimit, c.MaxMemory)
	}
	rds := gateway.NewRedis(c.RedisAddress, c.PoolSize, c.DialTimeout, c.RequestTimeout, limits,
		gateway.WithConnsPerToken(c.MaxConnectionsPerToken), gateway.WithMaxMemory(c.MaxMemory))
	defer rds.Close()
	srv := gateway.NewServer(rds, gateway.Config{
		MaxRequestBytes:          c.MaxRequestBytes,
		MaxHeaderBytes:           c.MaxHeaderBytes,
		MaxCommands:              c.MaxCommands,
		MaxArgs:                  c.MaxArgs,
		ReadHeaderTimeout:        c.ReadHeaderTimeout,
		ReadTimeout:              c.ReadTimeout,
		WriteTimeout:             c.WriteTimeout,
		IdleTimeout:              c.IdleTimeout,
		Policy:                   gateway.Policy{MaxBlock: c.MaxBlock},
		MaxSubscriptions:         c.MaxSubscriptions,
		MaxSubscriptionsPerToken: c.MaxSubscriptionsPerToken,
		MaxConnections:           c.MaxConnections,
		Log:                      log,
		Metrics:                  gateway.NewMetrics(reg, gateway.WithTopUsers(c.MetricsUsers)),
	})

	api := srv.HTTPServer()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// A wedged pool is unhealthy: Kubernetes restarts the gateway.
		if err := rds.Healthy(); err != nil {
			log.Info("Unhealthy: restart me", "error", err)
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
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
	log.Info("Serving the REST API", "address", apiLn.Addr().String(), "metrics-address", opsLn.Addr().String(), "redis-address", c.RedisAddress, "tls", c.TLSCertFile != "", "max-connections", c.MaxConnections, "max-memory", c.MaxMemory, "max-reply-bytes", rds.MaxReplyBytes())

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
	ctx := kong.Parse(&CLI{}, options()...)
	ctx.FatalIfErrorf(ctx.Run())
}
