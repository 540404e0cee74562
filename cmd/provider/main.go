// Command provider runs the redishttp Crossplane provider: it reconciles
// ApiKeys (Redis ACL users) and the provider configs they use.
package main

import (
	"io"
	"time"

	"github.com/alecthomas/kong"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ai-decenter/redishttp/apis"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	rcontroller "github.com/ai-decenter/redishttp/internal/controller"
	"github.com/ai-decenter/redishttp/internal/controller/apikey"
	"github.com/ai-decenter/redishttp/internal/version"

	"github.com/crossplane/crossplane-runtime/v2/pkg/controller"
	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/feature"
	"github.com/crossplane/crossplane-runtime/v2/pkg/gate"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
	"github.com/crossplane/crossplane-runtime/v2/pkg/ratelimiter"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/customresourcesgate"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/statemetrics"
)

// CLI of the provider. Every flag can also be set through its environment
// variable, as Crossplane's DeploymentRuntimeConfig does.
type CLI struct {
	Debug   bool         `env:"DEBUG" help:"Log at debug level, controller-runtime included." short:"d"`
	Version version.Flag `help:"Print the version and exit."`

	LeaderElection          bool          `env:"LEADER_ELECTION" help:"Elect a leader among provider replicas (a Lease in the provider's namespace)."`
	LeaderElectionNamespace string        `env:"POD_NAMESPACE" help:"Namespace of the leader election Lease; detected in a pod, required outside one."`
	SyncInterval            time.Duration `default:"1h"          env:"SYNC_INTERVAL"                                                              help:"How often every resource is re-read from the API server."`
	PollInterval            time.Duration `default:"1m"          env:"POLL_INTERVAL"                                                              help:"How often each ApiKey is checked for drift from its spec."`
	PollStateMetricInterval time.Duration `default:"5s" env:"POLL_STATE_METRIC_INTERVAL" help:"How often managed resource state metrics are recorded."`
	MaxReconcileRate        int           `default:"10" env:"MAX_RECONCILE_RATE"         help:"The global maximum rate per second of reconciles, and of API server requests."`

	MetricsBindAddress     string        `default:":8080" env:"METRICS_BIND_ADDRESS"      help:"Where to serve Prometheus metrics (0 disables)."`
	HealthProbeBindAddress string        `default:":8081" env:"HEALTH_PROBE_BIND_ADDRESS" help:"Where to serve /healthz and /readyz."`
	ShutdownTimeout        time.Duration `default:"30s"   env:"SHUTDOWN_TIMEOUT"          help:"How long running reconciles may take to finish on SIGTERM."`

	EnableManagementPolicies bool `default:"true" env:"ENABLE_MANAGEMENT_POLICIES" help:"Honour spec.managementPolicies." negatable:""`

	ConnectionSecretEndpoints []string `env:"CONNECTION_SECRET_ENDPOINTS" help:"Where an ApiKey's connectionSecretRef may make the provider connect: CIDRs (checked on the address dialled) and host name suffixes, comma-separated. Empty allows any endpoint." sep:","`
}

// Run the provider until SIGTERM or SIGINT.
func (c *CLI) Run() error {
	zl := zap.New(zap.UseDevMode(c.Debug))
	log := logging.NewLogrLogger(zl.WithName("provider-redishttp"))
	if c.Debug {
		ctrl.SetLogger(zl)
	} else {
		// controller-runtime is very verbose; it only logs in debug mode.
		ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}

	// KUBECONFIG out of the cluster, the pod's service account inside it.
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return errors.Wrap(err, "cannot get API server rest config")
	}

	leaseDuration, renewDeadline := 60*time.Second, 50*time.Second
	mgr, err := ctrl.NewManager(ratelimiter.LimitRESTConfig(cfg, c.MaxReconcileRate), ctrl.Options{
		Cache: cache.Options{
			SyncPeriod: &c.SyncInterval,
			// The ApiKey controller watches the Redis pods of instances
			// to heal keys as soon as a Redis restarts; the cache holds
			// those pods only, not every pod of the cluster.
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}: {Label: apikey.RedisPods(), Transform: cache.TransformStripManagedFields()},
			},
		},
		// Secrets are read and written through the API server, never
		// cached: a cached Get (ours or the connection publisher's) would
		// start a cluster-wide informer holding every tenant's Secrets in
		// the provider's memory.
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics: metricsserver.Options{BindAddress: c.MetricsBindAddress},

		HealthProbeBindAddress: c.HealthProbeBindAddress,

		// Long leases: under load, renewals that miss a short deadline
		// make replicas lose leadership for nothing.
		LeaderElection:                c.LeaderElection,
		LeaderElectionID:              "crossplane-leader-election-provider-redishttp",
		LeaderElectionNamespace:       c.LeaderElectionNamespace,
		LeaderElectionResourceLock:    resourcelock.LeasesResourceLock,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,

		GracefulShutdownTimeout: &c.ShutdownTimeout,
	})
	if err != nil {
		return errors.Wrap(err, "cannot create controller manager")
	}
	if err := apis.AddToScheme(mgr.GetScheme()); err != nil {
		return errors.Wrap(err, "cannot add redishttp APIs to scheme")
	}
	if err := apiextensionsv1.AddToScheme(mgr.GetScheme()); err != nil {
		return errors.Wrap(err, "cannot add CustomResourceDefinitions to scheme")
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return errors.Wrap(err, "cannot add health check")
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return errors.Wrap(err, "cannot add readiness check")
	}

	mrMetrics := managed.NewMRMetricRecorder()
	stateMetrics := statemetrics.NewMRStateMetrics()
	metrics.Registry.MustRegister(mrMetrics, stateMetrics)

	o := controller.Options{
		Logger:                  log,
		MaxConcurrentReconciles: c.MaxReconcileRate,
		PollInterval:            c.PollInterval,
		GlobalRateLimiter:       ratelimiter.NewGlobal(c.MaxReconcileRate),
		Features:                &feature.Flags{},
		Gate:                    new(gate.Gate[schema.GroupVersionKind]),
		MetricOptions: &controller.MetricOptions{
			PollStateMetricInterval: c.PollStateMetricInterval,
			MRMetrics:               mrMetrics,
			MRStateMetrics:          stateMetrics,
		},
	}
	if c.EnableManagementPolicies {
		o.Features.Enable(feature.EnableBetaManagementPolicies)
	}

	endpoints, err := redis.ParseEndpoints(c.ConnectionSecretEndpoints)
	if err != nil {
		return errors.Wrap(err, "cannot parse --connection-secret-endpoints")
	}

	// safe-start: controllers start once their CRDs are established, which
	// the CRD gate controller watches for.
	if err := customresourcesgate.Setup(mgr, o); err != nil {
		return errors.Wrap(err, "cannot set up CRD gate controller")
	}
	if err := rcontroller.SetupGated(mgr, o, apikey.Config{Endpoints: endpoints}); err != nil {
		return errors.Wrap(err, "cannot set up redishttp controllers")
	}
	log.Info("Starting provider", "version", version.Version, "poll-interval", c.PollInterval, "max-reconcile-rate", c.MaxReconcileRate, "connection-secret-endpoints", c.ConnectionSecretEndpoints)
	return errors.Wrap(mgr.Start(ctrl.SetupSignalHandler()), "cannot run controller manager")
}

func main() {
	ctx := kong.Parse(&CLI{}, kong.Name("provider"), kong.Description("The redishttp Crossplane provider: per-app Redis keys as ApiKey managed resources."))
	ctx.FatalIfErrorf(ctx.Run())
}
