package fn

import (
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// params is a validated, defaulted instance spec: everything the composers
// need and nothing they have to check again.
type params struct {
	Replicas        int32 // pods composed: 1, or 3 or 5 with Sentinel (HA)
	WantReplicas    int32 // pods asked for; below Replicas while a scale-down waits for the master to move
	Memory          resource.Quantity
	Maxmemory       int64 // bytes, below Memory; see maxmemoryFor
	Image           string
	ImageFromSpec   bool // the tenant set spec.image, not only redisVersion
	MaxmemoryPolicy string
	CPURequest      resource.Quantity
	CPULimit        resource.Quantity
	StorageSize     resource.Quantity
	StorageClass    string
	ReclaimPolicy   string
	RDB             bool
	AppendOnly      bool
	Config          []directive // sorted by name
	NetworkPolicy   bool
	PodSelector     map[string]string
	PDB             bool
	ConnSecretName  string      // only used in namespaced mode
	HTTP            *httpParams // nil while spec.http.enabled is false
	Backup          *backupParams
	Restore         *restoreParams
	Monitoring      bool // the exporter sidecar
	Dashboard       bool // the Grafana dashboard's ConfigMap
}

// HA reports whether the instance runs replicas and Sentinel.
func (p *params) HA() bool { return p.Replicas > 1 }

// httpParams is the validated, defaulted spec.http.
type httpParams struct {
	Replicas      int32
	CPURequest    resource.Quantity
	CPULimit      resource.Quantity
	MemoryRequest resource.Quantity
	MemoryLimit   resource.Quantity
	Host          string // empty: no Ingress
	ClassName     string
	TLSSecretName string
	Annotations   map[string]string
}

// parseSpec decodes an instance's spec (decode.go), fills in the API's
// defaults (defaults.go) and validates it (validate.go). It returns every
// problem it finds at once, each naming its field, so a tenant fixes their
// manifest in one go.
func parseSpec(spec map[string]any, instance string) (*params, field.ErrorList) {
	in, errs := decodeSpec(spec)
	if len(errs) > 0 {
		return nil, errs
	}
	applyDefaults(in)
	return validateSpec(in, instance)
}
