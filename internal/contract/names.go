package contract

import "fmt"

// Labels on every object the function composes for an instance, and their
// values. The provider watches Redis pods by them.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// NameRedis is LabelName's value on Redis's objects.
	NameRedis = "redis"
	// NameGateway is LabelName's value on the HTTP gateway's objects.
	NameGateway = "redis-http"
	// ManagedBy is LabelManagedBy's value on everything we compose.
	ManagedBy = "redishttp"
)

// Redis's port, and the admin user the instance password belongs to.
const (
	RedisPort = 6379
	AdminUser = "default"
)

// ImageUID is the uid and gid the project's own images (function, provider,
// gateway) run as, distroless's "nonroot": the images say so (internal/xpkg,
// cluster/images/Dockerfile) and the function's gateway pods run as it.
const ImageUID = 65532

// GatewayPort is the HTTP gateway's port, in its pods and on its Service.
const GatewayPort = 8080

// GatewayMetricsPort is where the gateway serves /metrics, /healthz and
// /readyz.
const GatewayMetricsPort = 8081

// Flags of the gateway (cmd/gateway) that the function sets in the
// gateway's Deployment: renaming one there breaks every composed gateway,
// which cmd/gateway's tests catch by parsing the function's arguments.
const (
	GatewayFlagRedisAddress   = "redis-address"
	GatewayFlagAddress        = "address"
	GatewayFlagMetricsAddress = "metrics-address"
)

// The instance's auth Secret (AuthSecretName): the password the provider
// administers the instance with, and the file redis.conf includes.
const (
	AuthPasswordKey = "password"
	AuthFileKey     = "auth.conf"
)

// StatefulSetName is the instance's StatefulSet.
func StatefulSetName(instance string) string { return instance + "-redis" }

// ServiceName is the instance's ClusterIP Service, where apps connect.
func ServiceName(instance string) string { return instance + "-redis" }

// HeadlessServiceName is the StatefulSet's governing Service.
func HeadlessServiceName(instance string) string { return instance + "-redis-headless" }

// ConfigMapName holds the instance's redis.conf.
func ConfigMapName(instance string) string { return instance + "-redis-config" }

// AuthSecretName holds the instance's password (AuthPasswordKey).
func AuthSecretName(instance string) string { return instance + "-redis-auth" }

// GatewayName names the HTTP gateway's Deployment and Service.
func GatewayName(instance string) string { return instance + "-http" }

// ServiceHost is the in-cluster DNS name of the instance's Service.
func ServiceHost(instance, namespace, clusterDomain string) string {
	return fmt.Sprintf("%s.%s.svc.%s", ServiceName(instance), namespace, clusterDomain)
}

// GatewayURL is the in-cluster URL of the instance's HTTP gateway.
func GatewayURL(instance, namespace, clusterDomain string) string {
	return fmt.Sprintf("http://%s.%s.svc.%s:%d", GatewayName(instance), namespace, clusterDomain, GatewayPort)
}

// DefaultClusterDomain is the cluster DNS domain unless the platform says
// otherwise.
const DefaultClusterDomain = "cluster.local"

// Where the function publishes the gateway's URLs in the instance's status
// (claim mode: Crossplane copies them to the claim), for the provider to put
// in ApiKeys' connection Secrets.
const (
	// StatusRESTURL is the URL apps use: the Ingress's when one is set, else
	// the in-cluster URL. Empty or absent while HTTP is off.
	StatusRESTURL = "status.http.url"
	// StatusRESTURLInCluster is always the in-cluster URL (GatewayURL).
	StatusRESTURLInCluster = "status.http.inClusterURL"
)
