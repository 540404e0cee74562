package fn

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
)

const (
	reclaimDelete = "Delete"
	reclaimRetain = "Retain"
)

// Bounds of the sizes of fields, the XRD's maxLength and maxProperties
// (TestXRDsAgreeWithCode), and of the message a spec's problems make.
const (
	maxRedisVersionLength = 32
	maxImageLength        = 512
	maxConfigDirectives   = 64
	maxPodSelectorLabels  = 16
	// maxShown is how much of a tenant's value one problem quotes.
	maxShown = 64
	// maxSpecMessage bounds the whole message, whatever the spec holds.
	maxSpecMessage = 4096
)

// Bounds of the quantities. Below minMemory Redis's own overhead leaves
// almost nothing for data; the upper bounds are far above any sane instance
// and keep every figure derived from them (maxmemory, the grace period) far
// from overflowing.
var (
	minMemory  = resource.MustParse("32Mi")
	maxMemory  = resource.MustParse("1Ti")
	minCPU     = resource.MustParse("1m")
	maxCPU     = resource.MustParse("64")
	minStorage = resource.MustParse("1Mi")
	maxStorage = resource.MustParse("64Ti")

	minGatewayMemory = resource.MustParse("16Mi")
	maxGatewayMemory = resource.MustParse("64Gi")
)

const (
	minHTTPReplicas       = 1
	maxHTTPReplicas       = 10
	maxIngressAnnotations = 32
)

var (
	// maxmemoryPolicies and reclaimPolicies are the XRD's enums, and
	// redisVersionRE its pattern (TestXRDsAgreeWithCode).
	maxmemoryPolicies = []string{
		"allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction",
	}
	reclaimPolicies = []string{reclaimDelete, reclaimRetain}
	// replicaCounts is the XRD's enum of spec.replicas: one Redis, or an odd
	// number of pods so that Sentinel keeps a majority after losing one (or
	// two of five).
	replicaCounts  = []int32{1, 3, 5}
	redisVersionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)
	// imageRE is deliberately loose (registries differ) but rejects anything a
	// kubelet could not pull: whitespace, quotes, control characters.
	imageRE = regexp.MustCompile(`^[a-z0-9][a-zA-Z0-9./:@_-]*$`)
)

// validateSpec checks a decoded, defaulted spec and turns it into params.
func validateSpec(in *v1alpha1.RedisHttpInstanceSpec, instance string) (*params, field.ErrorList) {
	root := field.NewPath("spec")
	var errs field.ErrorList
	p := &params{}

	p.Replicas = *in.Replicas
	p.WantReplicas = p.Replicas
	if !slices.Contains(replicaCounts, p.Replicas) {
		errs = append(errs, field.Invalid(root.Child("replicas"), p.Replicas,
			"must be 1, 3 or 5: one Redis, or a master and replicas with Sentinel, which needs an odd number of pods to keep a majority (2 survives no more failures than 1, 4 no more than 3)"))
	}

	if in.Memory == nil {
		errs = append(errs, field.Required(root.Child("memory"), "the memory for Redis, for example 256Mi"))
	} else if q, ok := quantity(in.Memory, root.Child("memory"), minMemory, maxMemory, &errs); ok {
		p.Memory = q
		p.Maxmemory = maxmemoryFor(q.Value())
	}

	switch {
	case len(in.RedisVersion) > maxRedisVersionLength:
		errs = append(errs, field.TooLong(root.Child("redisVersion"), shown(in.RedisVersion), maxRedisVersionLength))
	case !redisVersionRE.MatchString(in.RedisVersion):
		errs = append(errs, field.Invalid(root.Child("redisVersion"), in.RedisVersion, `must be a Redis version such as "7.2"`))
	case !atLeast7(in.RedisVersion):
		// ACL v2 (ApiKeys), listpack settings and the config this function
		// writes need Redis 7.
		errs = append(errs, field.Invalid(root.Child("redisVersion"), in.RedisVersion, "must be 7.0 or later"))
	}
	p.Image = "redis:" + in.RedisVersion + "-alpine"
	if in.Image != "" {
		switch {
		case len(in.Image) > maxImageLength:
			errs = append(errs, field.TooLong(root.Child("image"), shown(in.Image), maxImageLength))
		case !imageRE.MatchString(in.Image):
			errs = append(errs, field.Invalid(root.Child("image"), shown(in.Image), "must be a container image reference such as registry.example.com/redis:7.2-alpine"))
		}
		p.Image, p.ImageFromSpec = in.Image, true
	}

	p.MaxmemoryPolicy = in.MaxmemoryPolicy
	if !slices.Contains(maxmemoryPolicies, p.MaxmemoryPolicy) {
		errs = append(errs, field.NotSupported(root.Child("maxmemoryPolicy"), p.MaxmemoryPolicy, maxmemoryPolicies))
	}

	p.CPURequest, _ = quantity(in.CPU.Request, root.Child("cpu", "request"), minCPU, maxCPU, &errs)
	p.CPULimit, _ = quantity(in.CPU.Limit, root.Child("cpu", "limit"), minCPU, maxCPU, &errs)
	if p.CPURequest.Sign() > 0 && p.CPULimit.Sign() > 0 && p.CPURequest.Cmp(p.CPULimit) > 0 {
		errs = append(errs, field.Invalid(root.Child("cpu", "request"), p.CPURequest.String(), fmt.Sprintf("must not be above spec.cpu.limit (%s)", p.CPULimit.String())))
	}

	p.StorageSize, _ = quantity(in.Storage.Size, root.Child("storage", "size"), minStorage, maxStorage, &errs)
	p.StorageClass = in.Storage.StorageClassName
	if p.StorageClass != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p.StorageClass) {
			errs = append(errs, field.Invalid(root.Child("storage", "storageClassName"), shown(p.StorageClass), msg))
		}
	}
	p.ReclaimPolicy = in.Storage.ReclaimPolicy
	if !slices.Contains(reclaimPolicies, p.ReclaimPolicy) {
		errs = append(errs, field.NotSupported(root.Child("storage", "reclaimPolicy"), p.ReclaimPolicy, reclaimPolicies))
	}

	p.RDB, p.AppendOnly = *in.Persistence.RDB, *in.Persistence.AppendOnly

	var cerrs field.ErrorList
	p.Config, cerrs = parseConfig(in.Config, root.Child("config"))
	errs = append(errs, cerrs...)

	if np := in.NetworkPolicy; np != nil && np.Enabled && len(np.PodSelector) > maxPodSelectorLabels {
		errs = append(errs, field.TooMany(root.Child("networkPolicy", "podSelector"), len(np.PodSelector), maxPodSelectorLabels))
	} else if np != nil && np.Enabled {
		p.NetworkPolicy = true
		p.PodSelector = np.PodSelector
		for k, v := range np.PodSelector {
			sel := root.Child("networkPolicy", "podSelector").Key(k)
			for _, msg := range validation.IsQualifiedName(k) {
				errs = append(errs, field.Invalid(sel, shown(k), msg))
			}
			for _, msg := range validation.IsValidLabelValue(v) {
				errs = append(errs, field.Invalid(sel, shown(v), msg))
			}
		}
	}
	p.PDB = in.PodDisruptionBudget != nil && in.PodDisruptionBudget.Enabled
	p.Monitoring = in.Monitoring != nil && in.Monitoring.Enabled
	if m := in.Monitoring; m != nil && m.Dashboard && !m.Enabled {
		errs = append(errs, field.Invalid(root.Child("monitoring", "dashboard"), true, msgDashboardNeedsMonitoring))
	}
	p.Dashboard = p.Monitoring && in.Monitoring.Dashboard

	p.HTTP, errs = validateHTTP(in.HTTP, root.Child("http"), errs)
	p.Backup, errs = validateBackup(in.Backup, root.Child("backup"), errs)
	p.Restore, errs = validateRestore(in.Restore, root.Child("restore"), errs)

	p.ConnSecretName = instance + "-redis"
	if ref := in.WriteConnectionSecretToRef; ref != nil && ref.Name != "" {
		p.ConnSecretName = ref.Name
		for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
			errs = append(errs, field.Invalid(root.Child("writeConnectionSecretToRef", "name"), shown(ref.Name), msg))
		}
	}
	if p.ConnSecretName == contract.AuthSecretName(instance) {
		errs = append(errs, field.Invalid(root.Child("writeConnectionSecretToRef", "name"), p.ConnSecretName, "is the Secret that holds the instance's own password; choose another name"))
	}

	return p, errs
}

// validateHTTP checks spec.http, returning nil params while it is off.
func validateHTTP(in *v1alpha1.HTTP, path *field.Path, errs field.ErrorList) (*httpParams, field.ErrorList) {
	if in == nil || !in.Enabled {
		return nil, errs
	}
	h := &httpParams{Replicas: *in.Replicas}
	if h.Replicas < minHTTPReplicas || h.Replicas > maxHTTPReplicas {
		errs = append(errs, field.Invalid(path.Child("replicas"), h.Replicas, fmt.Sprintf("must be from %d to %d", minHTTPReplicas, maxHTTPReplicas)))
	}
	res := path.Child("resources")
	h.CPURequest, _ = quantity(in.Resources.Requests.CPU, res.Child("requests", "cpu"), minCPU, maxCPU, &errs)
	h.CPULimit, _ = quantity(in.Resources.Limits.CPU, res.Child("limits", "cpu"), minCPU, maxCPU, &errs)
	h.MemoryRequest, _ = quantity(in.Resources.Requests.Memory, res.Child("requests", "memory"), minGatewayMemory, maxGatewayMemory, &errs)
	h.MemoryLimit, _ = quantity(in.Resources.Limits.Memory, res.Child("limits", "memory"), minGatewayMemory, maxGatewayMemory, &errs)
	for _, r := range []struct {
		name       string
		req, limit resource.Quantity
	}{{"cpu", h.CPURequest, h.CPULimit}, {"memory", h.MemoryRequest, h.MemoryLimit}} {
		if r.req.Sign() > 0 && r.limit.Sign() > 0 && r.req.Cmp(r.limit) > 0 {
			errs = append(errs, field.Invalid(res.Child("requests", r.name), r.req.String(), fmt.Sprintf("must not be above spec.http.resources.limits.%s (%s)", r.name, r.limit.String())))
		}
	}

	ing := path.Child("ingress")
	h.Host, h.ClassName, h.TLSSecretName = in.Ingress.Host, in.Ingress.ClassName, in.Ingress.TLSSecretName
	if h.Host != "" {
		if fe := validation.IsFullyQualifiedDomainName(ing.Child("host"), h.Host); len(fe) > 0 {
			errs = append(errs, field.Invalid(ing.Child("host"), shown(h.Host), "must be a DNS name such as cache.redis.example.com"))
		}
	}
	for name, v := range map[string]string{"className": h.ClassName, "tlsSecretName": h.TLSSecretName} {
		if v == "" {
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(v) {
			errs = append(errs, field.Invalid(ing.Child(name), shown(v), msg))
		}
		if h.Host == "" {
			errs = append(errs, field.Invalid(ing.Child(name), shown(v), "needs spec.http.ingress.host: without a host there is no Ingress"))
		}
	}
	if len(in.Ingress.Annotations) > maxIngressAnnotations {
		errs = append(errs, field.TooMany(ing.Child("annotations"), len(in.Ingress.Annotations), maxIngressAnnotations))
	} else {
		for k := range in.Ingress.Annotations {
			p := ing.Child("annotations").Key(shown(k))
			for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
				errs = append(errs, field.Invalid(p, shown(k), msg))
			}
			// ingress-nginx's *-snippet annotations run arbitrary
			// configuration in the shared controller (CVE-2021-25742).
			if strings.Contains(strings.ToLower(k), "snippet") {
				errs = append(errs, field.Forbidden(p, "configuration snippets run in the shared ingress controller and are not allowed"))
			}
		}
		h.Annotations = in.Ingress.Annotations
	}
	return h, errs
}

// quantity checks a quantity against its bounds, recording a field error
// that gives the bound it is outside of.
func quantity(q *resource.Quantity, path *field.Path, lo, hi resource.Quantity, errs *field.ErrorList) (resource.Quantity, bool) {
	switch {
	case q.Sign() <= 0:
		*errs = append(*errs, field.Invalid(path, q.String(), "must be greater than zero"))
	case q.Cmp(lo) < 0:
		*errs = append(*errs, field.Invalid(path, q.String(), "must be at least "+lo.String()))
	case q.Cmp(hi) > 0:
		*errs = append(*errs, field.Invalid(path, q.String(), "must be at most "+hi.String()))
	default:
		return *q, true
	}
	return resource.Quantity{}, false
}

func atLeast7(version string) bool {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 7
}

// invalidSpecMessage joins field errors into one deterministic line a tenant
// can act on, at most maxSpecMessage bytes (plus a count of the problems left
// out) whatever the spec holds.
func invalidSpecMessage(kind, name string, errs field.ErrorList) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	sort.Strings(msgs)
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s %q: ", kind, shown(name))
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("; ")
		}
		if b.Len()+len(m) > maxSpecMessage {
			fmt.Fprintf(&b, "and %d more", len(msgs)-i)
			break
		}
		b.WriteString(m)
	}
	return b.String()
}

// shown is a tenant's value as a message quotes it: at most maxShown bytes,
// cut on a rune boundary.
func shown(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return truncate(s, maxShown) + "..."
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for i := range s {
		if i > n {
			break
		}
		cut = i
	}
	return s[:cut]
}
