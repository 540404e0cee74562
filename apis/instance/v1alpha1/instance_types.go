package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A RedisHttpInstance is a tenant's Redis: a StatefulSet with a volume, two
// Services, its redis.conf and its password, in the tenant's namespace, plus a
// connection Secret for the tenant's apps.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced
type RedisHttpInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RedisHttpInstanceSpec   `json:"spec"`
	Status RedisHttpInstanceStatus `json:"status,omitempty"`
}

// RedisHttpInstanceSpec is what a tenant asks for.
type RedisHttpInstanceSpec struct {
	// Replicas is how many Redis pods run. 1 (the default) is one Redis, as
	// before. 3 or 5 is one master and its replicas, with Redis Sentinel in
	// every pod deciding failovers (quorum: a majority): the Service
	// <name>-redis always routes to the current master, <name>-redis-replicas
	// to the ready replicas, <name>-redis-sentinel (port 26379) to Sentinel.
	// 2, 4 and more than 5 are refused: an even count adds a pod without
	// surviving one more failure. Scaling 1 -> 3 restarts the single pod once;
	// scaling down keeps the master's data (the master is handed to pod 0
	// first).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Enum=1;3;5
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Memory for Redis, as a Kubernetes quantity (for example 256Mi or 1Gi).
	// It is the container's memory request and limit; Redis's maxmemory is set
	// to 75% of it so that Redis evicts keys before the kernel kills the pod.
	// At least 32Mi, at most 1Ti.
	Memory *resource.Quantity `json:"memory"`

	// RedisVersion selects the image redis:<redisVersion>-alpine, unless image
	// is set.
	// +kubebuilder:default="7.2"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+){0,2}$`
	// +kubebuilder:validation:MaxLength=32
	// +optional
	RedisVersion string `json:"redisVersion,omitempty"`

	// Image overrides the container image entirely, for mirrors and air-gapped
	// clusters. It must run redis-server as uid 999, as the official image does.
	// The platform may restrict it to some registries.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// MaxmemoryPolicy is Redis's eviction policy once maxmemory is reached.
	// +kubebuilder:default=allkeys-lru
	// +kubebuilder:validation:Enum=allkeys-lru;allkeys-lfu;allkeys-random;volatile-lru;volatile-lfu;volatile-random;volatile-ttl;noeviction
	// +optional
	MaxmemoryPolicy string `json:"maxmemoryPolicy,omitempty"`

	// CPU request and limit of the Redis container.
	// +optional
	CPU *CPU `json:"cpu,omitempty"`

	// Storage for Redis's data directory (RDB and AOF files).
	// +optional
	Storage *Storage `json:"storage,omitempty"`

	// Persistence selects how Redis writes its data to disk.
	// +optional
	Persistence *Persistence `json:"persistence,omitempty"`

	// Config holds extra redis.conf directives. Only directives on an
	// allow-list are accepted (see the README); the ones this API manages
	// (maxmemory, dir, requirepass, include, ...) are refused. At most 64.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Config map[string]string `json:"config,omitempty"`

	// NetworkPolicy, when enabled, admits connections to Redis only from pods
	// in the instance's namespace (optionally only those matching podSelector).
	// +optional
	NetworkPolicy *NetworkPolicy `json:"networkPolicy,omitempty"`

	// PodDisruptionBudget, when enabled, protects the Redis pod from voluntary
	// evictions such as node drains. With one replica a drain waits until the
	// budget is removed: enable it only when that is what you want.
	// +optional
	PodDisruptionBudget *PodDisruptionBudget `json:"podDisruptionBudget,omitempty"`

	// HTTP composes the REST gateway (the Upstash protocol over HTTP) in front
	// of this instance.
	// +optional
	HTTP *HTTP `json:"http,omitempty"`

	// Backup takes verified backups of the instance's data into an
	// S3-compatible bucket, on a schedule and on demand.
	// +optional
	Backup *Backup `json:"backup,omitempty"`

	// Restore seeds a new instance from a backup before Redis serves. It is
	// only read when the instance is created; later changes are ignored.
	// +optional
	Restore *Restore `json:"restore,omitempty"`

	// Monitoring adds a Prometheus exporter to the Redis pod.
	// +optional
	Monitoring *Monitoring `json:"monitoring,omitempty"`

	// WriteConnectionSecretToRef names the Secret, in the instance's
	// namespace, that receives endpoint, port, username, password and url.
	// Defaults to <instance-name>-redis.
	// +optional
	WriteConnectionSecretToRef *SecretReference `json:"writeConnectionSecretToRef,omitempty"`
}

// CPU request and limit, as Kubernetes quantities.
type CPU struct {
	// Request is the CPU the scheduler reserves for Redis.
	// +kubebuilder:default="100m"
	// +optional
	Request *resource.Quantity `json:"request,omitempty"`

	// Limit caps Redis's CPU. Must not be below request; at most 64.
	// +kubebuilder:default="500m"
	// +optional
	Limit *resource.Quantity `json:"limit,omitempty"`
}

// Storage for Redis's data directory.
type Storage struct {
	// Size of the volume, at most 64Ti.
	// +kubebuilder:default="1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volume; empty means the cluster's default class.
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`

	// ReclaimPolicy says what happens to the volume when the instance is
	// deleted: Delete removes it with the StatefulSet, Retain keeps it.
	// +kubebuilder:default=Delete
	// +kubebuilder:validation:Enum=Delete;Retain
	// +optional
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
}

// Persistence selects Redis's persistence modes.
type Persistence struct {
	// RDB enables periodic snapshots (save 3600 1 / 300 100 / 60 10000).
	// +kubebuilder:default=true
	// +optional
	RDB *bool `json:"rdb,omitempty"`

	// AppendOnly enables the append-only file with appendfsync everysec.
	// +kubebuilder:default=false
	// +optional
	AppendOnly *bool `json:"appendOnly,omitempty"`
}

// NetworkPolicy settings.
type NetworkPolicy struct {
	// Enabled composes a NetworkPolicy for the Redis pod.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// PodSelector narrows the allowed clients to pods in the instance's
	// namespace with these labels. Empty means every pod in the namespace.
	// At most 16 labels.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	PodSelector map[string]string `json:"podSelector,omitempty"`
}

// PodDisruptionBudget settings.
type PodDisruptionBudget struct {
	// Enabled composes a PodDisruptionBudget with minAvailable 1.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
}

// Monitoring settings.
type Monitoring struct {
	// Enabled adds the exporter sidecar (oliver006/redis_exporter, logged in
	// as its own ACL user that cannot read keys or write), serving metrics
	// on port 9121 of the Service <instance>-redis-metrics, which the
	// platform's Prometheus may reach.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Dashboard publishes a Grafana dashboard of the instance (memory,
	// commands, hit ratio, clients, evictions, persistence, replication and,
	// with HTTP on, the gateway's requests by ApiKey) in the ConfigMap
	// <instance>-redis-dashboard, labelled grafana_dashboard: "1" for
	// Grafana's dashboard sidecar. Needs enabled.
	// +optional
	Dashboard bool `json:"dashboard,omitempty"`
}

// HTTP is the instance's REST gateway. Its connection Secret keys
// UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are what
// @upstash/redis's Redis.fromEnv() reads.
type HTTP struct {
	// Enabled composes the gateway: a Deployment and a Service named
	// <instance>-http, and an Ingress when ingress.host is set. Turning it off
	// removes them and leaves Redis and its data untouched.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Replicas of the gateway, which is stateless: more than one for
	// availability (with a PodDisruptionBudget when podDisruptionBudget is
	// enabled).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources of the gateway container.
	// +optional
	Resources *Resources `json:"resources,omitempty"`

	// Ingress exposes the gateway outside the cluster.
	// +optional
	Ingress *Ingress `json:"ingress,omitempty"`
}

// Resources are a container's requests and limits.
type Resources struct {
	// Requests the scheduler reserves.
	// +optional
	Requests *GatewayResourceList `json:"requests,omitempty"`

	// Limits the container may not exceed.
	// +optional
	Limits *GatewayLimitList `json:"limits,omitempty"`
}

// GatewayResourceList is the gateway's resource requests.
type GatewayResourceList struct {
	// CPU, at most 64.
	// +kubebuilder:default="50m"
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// Memory, at most 64Gi.
	// +kubebuilder:default="64Mi"
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// GatewayLimitList is the gateway's resource limits.
type GatewayLimitList struct {
	// CPU, at most 64.
	// +kubebuilder:default="1"
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`

	// Memory, at most 64Gi.
	// +kubebuilder:default="256Mi"
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// Ingress exposes the gateway through the cluster's ingress controller.
type Ingress struct {
	// Host is the DNS name apps outside the cluster use, for example
	// cache-team-a.redis.example.com. Empty means no Ingress.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Host string `json:"host,omitempty"`

	// ClassName is the Ingress's ingressClassName; empty means the cluster's
	// default class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClassName string `json:"className,omitempty"`

	// TLSSecretName terminates TLS at the ingress with this Secret (which
	// cert-manager can issue through annotations). The REST URL is https://
	// with it, http:// without.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// Annotations of the Ingress. Keys containing "snippet" (ingress-nginx
	// configuration snippets) are refused.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Backup settings. Each backup is one RDB snapshot (from a replica when the
// instance has replicas), verified and described by a manifest before it
// counts; see the README's "Backups and restore".
type Backup struct {
	// Schedule in CronJob syntax (for example "0 */6 * * *", in UTC); empty
	// means no scheduled backups (on-demand ones still work).
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Schedule string `json:"schedule,omitempty"`

	// Keep is how many of the newest complete backups are kept, 1 to 100.
	// +kubebuilder:default=7
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Keep *int32 `json:"keep,omitempty"`

	// S3 is where backups are written.
	S3 S3 `json:"s3"`

	// EncryptionKeySecretRef names a Secret whose key "key" holds an age
	// identity (AGE-SECRET-KEY-1..., from age-keygen): backups are then
	// encrypted before they leave the cluster, and restoring one needs the
	// same key.
	// +optional
	EncryptionKeySecretRef *SecretReference `json:"encryptionKeySecretRef,omitempty"`
}

// S3 is an S3-compatible bucket (AWS, MinIO, Ceph, ...).
type S3 struct {
	// Endpoint is http(s)://host[:port]. https certificates are verified
	// (caSecretRef for a private CA); plain http is meant for in-cluster
	// stores.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Endpoint string `json:"endpoint"`

	// Bucket name (3-63 characters: lowercase letters, digits, dots and
	// hyphens).
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`

	// Prefix of the backups' object names; empty means
	// "<namespace>/<name>/". Letters, digits and !-_.*'()/ only, ending in
	// "/", without "//", "." or ".." segments.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// Region of the bucket.
	// +kubebuilder:default=us-east-1
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// CredentialsSecretRef names a Secret with AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY.
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// CASecretRef names a Secret whose key "ca.crt" holds the PEM
	// certificates of a private CA that signs the endpoint's certificate.
	// +optional
	CASecretRef *SecretReference `json:"caSecretRef,omitempty"`
}

// Restore seeds a new instance from a backup.
type Restore struct {
	// S3 is where the backup is read from.
	S3 S3 `json:"s3"`

	// Backup is a backup's name (as status.backup.last shows it) or
	// "latest", the newest complete backup.
	// +kubebuilder:default=latest
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Backup string `json:"backup,omitempty"`

	// EncryptionKeySecretRef names a Secret whose key "key" holds the age
	// identity the backup was encrypted with.
	// +optional
	EncryptionKeySecretRef *SecretReference `json:"encryptionKeySecretRef,omitempty"`
}

// A SecretReference names a Secret in the instance's namespace.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// RedisHttpInstanceStatus is what the tenant sees of their Redis.
type RedisHttpInstanceStatus struct {
	// Endpoint is the in-cluster DNS name of the Redis Service.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Port Redis listens on.
	// +optional
	Port int32 `json:"port,omitempty"`

	// HTTP is where the REST gateway answers, while it is enabled.
	// +optional
	HTTP *HTTPStatus `json:"http,omitempty"`

	// Master names the pod that is Redis's master (the one the Service
	// <name>-redis routes to), as the pods' role labels say. Empty while no
	// pod is known to be the master (during a failover).
	// +optional
	Master string `json:"master,omitempty"`

	// Replicas counts the ready replicas (pods other than the master that
	// replicate from it and pass their readiness probe).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// Backup reports the instance's backups.
	// +optional
	Backup *BackupStatus `json:"backup,omitempty"`

	// Phase summarises the instance: Provisioning until Redis is ready, Ready
	// once it is, Failed while its pod fails in a way that will not fix itself
	// (the image cannot be pulled, Redis crash-loops), Invalid while the spec
	// is refused (what runs keeps the last accepted spec, status.applied); a
	// Warning event on the instance says why.
	// +kubebuilder:validation:Enum=Provisioning;Ready;Failed;Invalid
	// +optional
	Phase string `json:"phase,omitempty"`

	// Applied is the last spec the function accepted, with its defaults:
	// what runs. While a change is refused (phase Invalid) the instance keeps
	// running as this says.
	// +optional
	Applied *RedisHttpInstanceSpec `json:"applied,omitempty"`
}

// BackupStatus reports the instance's backups. The BackupHealthy condition
// says whether the last one succeeded and, when not, why.
type BackupStatus struct {
	// LastSuccessfulTime is when the newest complete backup was taken.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// Last is the newest complete backup's name, for spec.restore.backup.
	// +optional
	Last string `json:"last,omitempty"`
}

// HTTPStatus is where the REST gateway answers.
type HTTPStatus struct {
	// URL apps use: the Ingress's when one is set, else the in-cluster URL.
	// +optional
	URL string `json:"url,omitempty"`

	// InClusterURL is the gateway Service's URL inside the cluster.
	// +optional
	InClusterURL string `json:"inClusterURL,omitempty"`
}

// Phases of a RedisHttpInstance.
const (
	PhaseProvisioning = "Provisioning"
	PhaseReady        = "Ready"
	PhaseFailed       = "Failed"
	PhaseInvalid      = "Invalid"
)
