package fn

import (
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
)

// Defaults of the tenant-facing API. The XRD schemas carry the same defaults
// (kubebuilder markers in apis/instance/v1alpha1; TestXRDsAgreeWithCode proves
// they are equal); the function applies them too because `crossplane render`
// and older objects do not go through the API server's defaulting.
const (
	defaultReplicas        = 1
	defaultRedisVersion    = "7.2"
	defaultMaxmemoryPolicy = "allkeys-lru"
	defaultCPURequest      = "100m"
	defaultCPULimit        = "500m"
	defaultStorageSize     = "1Gi"
	defaultReclaimPolicy   = reclaimDelete
	defaultRDB             = true
	defaultAppendOnly      = false

	defaultHTTPReplicas      = 1
	defaultHTTPCPURequest    = "50m"
	defaultHTTPMemoryRequest = "64Mi"
	defaultHTTPCPULimit      = "1"
	defaultHTTPMemoryLimit   = "256Mi"
)

// applyDefaults fills in every field the tenant left out (or empty) with the
// API's default.
func applyDefaults(in *v1alpha1.RedisHttpInstanceSpec) {
	if in.Replicas == nil {
		in.Replicas = new(int32(defaultReplicas))
	}
	in.RedisVersion = withDefault(in.RedisVersion, defaultRedisVersion)
	in.MaxmemoryPolicy = withDefault(in.MaxmemoryPolicy, defaultMaxmemoryPolicy)
	if in.CPU == nil {
		in.CPU = &v1alpha1.CPU{}
	}
	in.CPU.Request = orDefault(in.CPU.Request, defaultCPURequest)
	in.CPU.Limit = orDefault(in.CPU.Limit, defaultCPULimit)
	if in.Storage == nil {
		in.Storage = &v1alpha1.Storage{}
	}
	in.Storage.Size = orDefault(in.Storage.Size, defaultStorageSize)
	in.Storage.ReclaimPolicy = withDefault(in.Storage.ReclaimPolicy, defaultReclaimPolicy)
	if in.Persistence == nil {
		in.Persistence = &v1alpha1.Persistence{}
	}
	if in.Persistence.RDB == nil {
		in.Persistence.RDB = new(defaultRDB)
	}
	if in.Persistence.AppendOnly == nil {
		in.Persistence.AppendOnly = new(defaultAppendOnly)
	}
	if b := in.Backup; b != nil {
		if b.Keep == nil {
			b.Keep = new(int32(defaultBackupKeep))
		}
		b.S3.Region = withDefault(b.S3.Region, defaultS3Region)
	}
	if r := in.Restore; r != nil {
		r.Backup = withDefault(r.Backup, contract.BackupLatest)
		r.S3.Region = withDefault(r.S3.Region, defaultS3Region)
	}
	if h := in.HTTP; h != nil {
		if h.Replicas == nil {
			h.Replicas = new(int32(defaultHTTPReplicas))
		}
		if h.Resources == nil {
			h.Resources = &v1alpha1.Resources{}
		}
		if h.Resources.Requests == nil {
			h.Resources.Requests = &v1alpha1.GatewayResourceList{}
		}
		if h.Resources.Limits == nil {
			h.Resources.Limits = &v1alpha1.GatewayLimitList{}
		}
		h.Resources.Requests.CPU = orDefault(h.Resources.Requests.CPU, defaultHTTPCPURequest)
		h.Resources.Requests.Memory = orDefault(h.Resources.Requests.Memory, defaultHTTPMemoryRequest)
		h.Resources.Limits.CPU = orDefault(h.Resources.Limits.CPU, defaultHTTPCPULimit)
		h.Resources.Limits.Memory = orDefault(h.Resources.Limits.Memory, defaultHTTPMemoryLimit)
		if h.Ingress == nil {
			h.Ingress = &v1alpha1.Ingress{}
		}
	}
}

func orDefault(v *resource.Quantity, def string) *resource.Quantity {
	if v == nil {
		return new(resource.MustParse(def))
	}
	return v
}

func withDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
