package fn

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
)

// Defaults of the tenant-facing API. The XRD schemas carry the same defaults;
// the function applies them too because `crossplane render` and older objects
// do not go through the API server's defaulting.
const (
	defaultRedisVersion    = "7.2"
	defaultMaxmemoryPolicy = "allkeys-lru"
	defaultCPURequest      = "100m"
	defaultCPULimit        = "500m"
	defaultStorageSize     = "1Gi"
	reclaimDelete          = "Delete"
	reclaimRetain          = "Retain"

	// minMemory is the smallest container memory we accept: below it Redis's
	// own overhead leaves almost nothing for data.
	minMemory = 32 << 20
)

var (
	maxmemoryPolicies = []string{
		"allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction",
	}
	redisVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)
	// imageRE is deliberately loose (registries differ) but rejects anything a
	// kubelet could not pull: whitespace, quotes, control characters.
	imageRE = regexp.MustCompile(`^[a-z0-9][a-zA-Z0-9./:@_-]*$`)
)

// params is a validated, defaulted instance spec: everything the composers
// need and nothing they have to check again.
type params struct {
	Memory          resource.Quantity
	Maxmemory       int64 // bytes, below Memory; see maxmemoryFor
	Image           string
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
	ConnSecretName  string // only used in namespaced mode
}

// parseSpec decodes and validates an instance's spec. It returns every
// problem it finds at once, each naming its field, so a tenant fixes their
// manifest in one go.
func parseSpec(spec map[string]any, instance string) (*params, field.ErrorList) {
	root := field.NewPath("spec")
	// IntOrString's own decoding errors name no field, so check the
	// quantities' JSON types first.
	if errs := quantityTypes(spec, root); len(errs) > 0 {
		return nil, errs
	}
	in := &v1alpha1.RedisHttpInstanceSpec{}
	b, err := json.Marshal(spec)
	if err == nil {
		err = json.Unmarshal(b, in)
	}
	if err != nil {
		return nil, field.ErrorList{decodeError(root, err)}
	}

	var errs field.ErrorList
	p := &params{}

	if spec["memory"] == nil {
		errs = append(errs, field.Required(root.Child("memory"), "the memory for Redis, for example 256Mi"))
	} else if q, ok := quantity(&in.Memory, root.Child("memory"), &errs); ok {
		if q.Value() < minMemory {
			errs = append(errs, field.Invalid(root.Child("memory"), in.Memory.String(), "must be at least 32Mi"))
		}
		p.Memory = q
		p.Maxmemory = maxmemoryFor(q.Value())
	}

	version := withDefault(in.RedisVersion, defaultRedisVersion)
	switch {
	case !redisVersionRE.MatchString(version):
		errs = append(errs, field.Invalid(root.Child("redisVersion"), version, `must be a Redis version such as "7.2"`))
	case !atLeast7(version):
		// ACL v2 (ApiKeys), listpack settings and the config this function
		// writes need Redis 7.
		errs = append(errs, field.Invalid(root.Child("redisVersion"), version, "must be 7.0 or later"))
	}
	p.Image = "redis:" + version + "-alpine"
	if in.Image != "" {
		if !imageRE.MatchString(in.Image) {
			errs = append(errs, field.Invalid(root.Child("image"), in.Image, "must be a container image reference such as registry.example.com/redis:7.2-alpine"))
		}
		p.Image = in.Image
	}

	p.MaxmemoryPolicy = withDefault(in.MaxmemoryPolicy, defaultMaxmemoryPolicy)
	if !contains(maxmemoryPolicies, p.MaxmemoryPolicy) {
		errs = append(errs, field.NotSupported(root.Child("maxmemoryPolicy"), p.MaxmemoryPolicy, maxmemoryPolicies))
	}

	cpu := in.CPU
	if cpu == nil {
		cpu = &v1alpha1.CPU{}
	}
	p.CPURequest, _ = quantity(orDefault(cpu.Request, defaultCPURequest), root.Child("cpu", "request"), &errs)
	p.CPULimit, _ = quantity(orDefault(cpu.Limit, defaultCPULimit), root.Child("cpu", "limit"), &errs)
	if p.CPURequest.Sign() > 0 && p.CPULimit.Sign() > 0 && p.CPURequest.Cmp(p.CPULimit) > 0 {
		errs = append(errs, field.Invalid(root.Child("cpu", "request"), p.CPURequest.String(), fmt.Sprintf("must not be above spec.cpu.limit (%s)", p.CPULimit.String())))
	}

	st := in.Storage
	if st == nil {
		st = &v1alpha1.Storage{}
	}
	p.StorageSize, _ = quantity(orDefault(st.Size, defaultStorageSize), root.Child("storage", "size"), &errs)
	p.StorageClass = st.StorageClassName
	if p.StorageClass != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p.StorageClass) {
			errs = append(errs, field.Invalid(root.Child("storage", "storageClassName"), p.StorageClass, msg))
		}
	}
	p.ReclaimPolicy = withDefault(st.ReclaimPolicy, reclaimDelete)
	if p.ReclaimPolicy != reclaimDelete && p.ReclaimPolicy != reclaimRetain {
		errs = append(errs, field.NotSupported(root.Child("storage", "reclaimPolicy"), p.ReclaimPolicy, []string{reclaimDelete, reclaimRetain}))
	}

	p.RDB, p.AppendOnly = true, false
	if in.Persistence != nil {
		if in.Persistence.RDB != nil {
			p.RDB = *in.Persistence.RDB
		}
		if in.Persistence.AppendOnly != nil {
			p.AppendOnly = *in.Persistence.AppendOnly
		}
	}

	var cerrs field.ErrorList
	p.Config, cerrs = parseConfig(in.Config, root.Child("config"))
	errs = append(errs, cerrs...)

	if np := in.NetworkPolicy; np != nil && np.Enabled {
		p.NetworkPolicy = true
		p.PodSelector = np.PodSelector
		for k, v := range np.PodSelector {
			sel := root.Child("networkPolicy", "podSelector").Key(k)
			for _, msg := range validation.IsQualifiedName(k) {
				errs = append(errs, field.Invalid(sel, k, msg))
			}
			for _, msg := range validation.IsValidLabelValue(v) {
				errs = append(errs, field.Invalid(sel, v, msg))
			}
		}
	}
	p.PDB = in.PodDisruptionBudget != nil && in.PodDisruptionBudget.Enabled

	p.ConnSecretName = instance + "-redis"
	if ref := in.WriteConnectionSecretToRef; ref != nil && ref.Name != "" {
		p.ConnSecretName = ref.Name
		for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
			errs = append(errs, field.Invalid(root.Child("writeConnectionSecretToRef", "name"), ref.Name, msg))
		}
	}
	if p.ConnSecretName == authSecretName(instance) {
		errs = append(errs, field.Invalid(root.Child("writeConnectionSecretToRef", "name"), p.ConnSecretName, "is the Secret that holds the instance's own password; choose another name"))
	}

	return p, errs
}

// maxmemoryFor returns Redis's maxmemory for a container memory limit: 75% of
// it, rounded down to whole MiB when the limit allows. The rest is headroom the
// kernel counts against the limit but maxmemory does not: the copy-on-write
// pages of the child that writes RDB snapshots and rewrites the AOF, client
// query and output buffers, and allocator fragmentation. Without it a busy
// Redis is OOM-killed instead of evicting keys.
func maxmemoryFor(limit int64) int64 {
	mm := limit / 4 * 3
	if mm >= 64<<20 {
		mm = mm / (1 << 20) * (1 << 20)
	}
	return mm
}

// quantity parses an int-or-string Kubernetes quantity, recording a field
// error when it is not one or is not positive.
func quantity(v *intstr.IntOrString, path *field.Path, errs *field.ErrorList) (resource.Quantity, bool) {
	s := v.String()
	q, err := resource.ParseQuantity(s)
	if err != nil {
		*errs = append(*errs, field.Invalid(path, s, "must be a Kubernetes quantity such as 256Mi, 1Gi or 500m"))
		return resource.Quantity{}, false
	}
	if q.Sign() <= 0 {
		*errs = append(*errs, field.Invalid(path, s, "must be greater than zero"))
		return resource.Quantity{}, false
	}
	return q, true
}

func atLeast7(version string) bool {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 7
}

func orDefault(v *intstr.IntOrString, def string) *intstr.IntOrString {
	if v == nil || (v.Type == intstr.String && v.StrVal == "") {
		d := intstr.FromString(def)
		return &d
	}
	return v
}

func withDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func contains(list []string, s string) bool {
	return slices.Contains(list, s)
}

// quantityFields are the spec fields that hold Kubernetes quantities.
var quantityFields = map[string]bool{"memory": true, "cpu.request": true, "cpu.limit": true, "storage.size": true}

// decodeError turns a JSON decoding error into a field error a tenant can act
// on: which field, and what it should have been.
func decodeError(root *field.Path, err error) *field.Error {
	var te *json.UnmarshalTypeError
	if !asTypeError(err, &te) || te.Field == "" {
		return field.Invalid(root, "", "cannot decode the instance's spec: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	want := jsonKind(te.Type.Kind().String())
	if quantityFields[te.Field] {
		want = "a Kubernetes quantity such as 256Mi"
	}
	parts := strings.Split(te.Field, ".")
	return field.Invalid(root.Child(parts[0], parts[1:]...), "a JSON "+te.Value, "must be "+want)
}

func quantityTypes(spec map[string]any, root *field.Path) field.ErrorList {
	var errs field.ErrorList
	for f := range quantityFields {
		parts := strings.Split(f, ".")
		var v any = spec
		for _, p := range parts {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[p]
		}
		switch v.(type) {
		case nil, string, float64, int64, int:
		default:
			errs = append(errs, field.Invalid(root.Child(parts[0], parts[1:]...), v, "must be a Kubernetes quantity such as 256Mi"))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice":
		return "a list"
	default:
		return "a number"
	}
}
