package fn

import (
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
)

// Defaults of the tenant-facing API. The XRD schemas carry the same defaults
// (kubebuilder markers in apis/instance/v1alpha1; TestXRDsAgreeWithCode proves
// they are equal); the function applies them too because `crossplane render`
// and older objects do not go through the API server's defaulting.
const (
	defaultRedisVersion    = "7.2"
	defaultMaxmemoryPolicy = "allkeys-lru"
	defaultCPURequest      = "100m"
	defaultCPULimit        = "500m"
	defaultStorageSize     = "1Gi"
	defaultReclaimPolicy   = reclaimDelete
	defaultRDB             = true
	defaultAppendOnly      = false
)

// applyDefaults fills in every field the tenant left out (or empty) with the
// API's default.
func applyDefaults(in *v1alpha1.RedisHttpInstanceSpec) {
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
