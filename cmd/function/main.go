// Command function serves the redishttp composition function over gRPC.
package main

import (
	"github.com/alecthomas/kong"

	"github.com/ai-decenter/redishttp/internal/fn"
	"github.com/ai-decenter/redishttp/internal/version"

	"github.com/crossplane/function-sdk-go"
)

// CLI of this function, shaped like every Crossplane function's.
type CLI struct {
	Debug   bool         `help:"Emit debug logs in addition to info logs." short:"d"`
	Version version.Flag `help:"Print the version and exit."`

	Network                string            `default:"tcp"                                        help:"Network on which to listen for gRPC connections."`
	Address                string            `default:":9443"                                      help:"Address at which to listen for gRPC connections."`
	TLSCertsDir            string            `env:"TLS_SERVER_CERTS_DIR"                           help:"Directory containing server certs (tls.key, tls.crt) and the CA used to verify clients (ca.crt)"`
	Insecure               bool              `help:"Run without mTLS credentials. If you supply this flag --tls-certs-dir will be ignored."`
	MaxRecvMessageSize     int               `default:"4"                                          help:"Maximum size of received messages in MB."`
	MetricsAddress         string            `default:":8080"                                      help:"Address at which to serve Prometheus metrics; empty disables them."`
	ClusterDomain          string            `default:"cluster.local" env:"CLUSTER_DOMAIN"         help:"DNS domain of Services in the cluster, used in connection endpoints."`
	ProviderNamespace      string            `default:"crossplane-system" env:"PROVIDER_NAMESPACE" help:"Namespace of the ApiKey provider's pods, admitted by instances' NetworkPolicies."`
	ProviderName           string            `default:"provider-redishttp" env:"PROVIDER_NAME"     help:"Name of the ApiKey Provider object, whose pods instances' NetworkPolicies admit."`
	GatewayImage           string            `default:"${gateway_image}" env:"GATEWAY_IMAGE"            help:"Image of the HTTP gateway composed for instances with spec.http.enabled; empty refuses spec.http."`
	CoordinatorImage       string            `default:"${coordinator_image}" env:"COORDINATOR_IMAGE"    help:"Image of the coordinator in every pod of instances with spec.replicas 3 or 5; empty refuses replicas above 1."`
	BackupImage            string            `default:"${backup_image}"  env:"BACKUP_IMAGE"             help:"Image of cmd/backup: the backup jobs and restore init containers of instances with spec.backup or spec.restore; empty refuses both."`
	IngressNamespace       string            `default:"ingress-nginx"    env:"INGRESS_NAMESPACE"        help:"Namespace of the ingress controller's pods, admitted by gateways' NetworkPolicies when an instance has an Ingress."`
	IngressPodLabels       map[string]string `default:"app.kubernetes.io/name=ingress-nginx" env:"INGRESS_POD_LABELS" help:"Labels of the ingress controller's pods (k=v;k2=v2)."`
	AllowedImagePrefix     []string          `env:"ALLOWED_IMAGE_PREFIXES" help:"Registry or repository prefix a tenant's spec.image must be under (repeat, or comma-separated); none allows any image. The default image (redis:<redisVersion>-alpine) is not restricted." name:"allowed-image-prefix" sep:","`
	ExporterImage          string            `default:"${exporter_image}" env:"EXPORTER_IMAGE" help:"Image of the Prometheus exporter sidecar of instances with spec.monitoring.enabled (oliver006/redis_exporter); empty refuses spec.monitoring."`
	PrometheusNamespace    string            `default:"monitoring" env:"PROMETHEUS_NAMESPACE" help:"Namespace of the platform's Prometheus pods, admitted to the exporter by instances' NetworkPolicies."`
	PrometheusPodLabels    map[string]string `default:"app.kubernetes.io/name=prometheus" env:"PROMETHEUS_POD_LABELS" help:"Labels of the platform's Prometheus pods (k=v;k2=v2)."`
	PrometheusSelectLabels map[string]string `env:"PROMETHEUS_SELECT_LABELS" help:"Labels put on the ServiceMonitors and PrometheusRules composed for instances, which the platform's Prometheus selects them by (k=v;k2=v2)."`
}

// Run this function.
func (c *CLI) Run() error {
	log, err := function.NewLogger(c.Debug)
	if err != nil {
		return err
	}
	log.Info("Starting the function", "version", version.Version, "address", c.Address, "gateway-image", c.GatewayImage)
	return function.Serve(fn.NewFunction(log,
		fn.WithClusterDomain(c.ClusterDomain),
		fn.WithProviderPeer(fn.ProviderPeer{Namespace: c.ProviderNamespace, Name: c.ProviderName}),
		fn.WithAllowedImagePrefixes(c.AllowedImagePrefix...),
		fn.WithGatewayImage(c.GatewayImage),
		fn.WithCoordinatorImage(c.CoordinatorImage),
		fn.WithBackupImage(c.BackupImage),
		fn.WithIngressPeer(fn.IngressPeer{Namespace: c.IngressNamespace, Labels: c.IngressPodLabels}),
		fn.WithExporterImage(c.ExporterImage),
		fn.WithPrometheusPeer(fn.PrometheusPeer{Namespace: c.PrometheusNamespace, Labels: c.PrometheusPodLabels, SelectLabels: c.PrometheusSelectLabels})), c.serveOptions()...)
}

// serveOptions are how the function is served. The metrics address is always
// passed on: function-sdk-go serves metrics on :8080 unless told otherwise,
// so leaving the option out for an empty address would not disable them.
func (c *CLI) serveOptions() []function.ServeOption {
	return []function.ServeOption{
		function.Listen(c.Network, c.Address),
		function.MTLSCertificates(c.TLSCertsDir),
		function.Insecure(c.Insecure),
		function.MaxRecvMessageSize(c.MaxRecvMessageSize * 1024 * 1024),
		function.WithMetricsServer(c.MetricsAddress),
	}
}

// gatewayImage is the default --gateway-image: the gateway image built and
// published with this function (make build sets it with -ldflags -X).
var gatewayImage = "xpkg.crossplane.io/ai-decenter/gateway-redishttp:v0.1.0"

// backupImage is the default --backup-image: the backup image built and
// published with this function (make build sets it with -ldflags -X).
var backupImage = "xpkg.crossplane.io/ai-decenter/backup-redishttp:v0.1.0"

// coordinatorImage is the default --coordinator-image, likewise.
var coordinatorImage = "xpkg.crossplane.io/ai-decenter/coordinator-redishttp:v0.1.0"

func main() {
	ctx := kong.Parse(&CLI{}, kong.Description("A Crossplane composition function that runs an authenticated Redis for a RedisHttpInstance."),
		kong.Vars{"gateway_image": gatewayImage, "coordinator_image": coordinatorImage, "backup_image": backupImage, "exporter_image": fn.DefaultExporterImage})
	ctx.FatalIfErrorf(ctx.Run())
}
