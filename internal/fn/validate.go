package fn

import (
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
	"github.com/ai-decenter/redishttp/internal/contract"
)

const (
	reclaimDelete = "Delete"
	reclaimRetain = "Retain"

	// minMemory is the smallest container memory we accept: below it Redis's
	// own overhead leaves almost nothing for data.
	minMemory = 32 << 20
)

var (
	// maxmemoryPolicies and reclaimPolicies are the XRD's enums, and
	// redisVersionRE its pattern (TestXRDsAgreeWithCode).
	maxmemoryPolicies = []string{
		"allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction",
	}
	reclaimPolicies = []string{reclaimDelete, reclaimRetain}
	redisVersionRE  = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)
	// imageRE is deliberately loose (registries differ) but rejects anything a
	// kubelet could not pull: whitespace, quotes, control characters.
	imageRE = regexp.MustCompile(`^[a-z0-9][a-zA-Z0-9./:@_-]*$`)
)

// validateSpec checks a decoded, defaulted spec and turns it into params.
// hasMemory says whether the tenant set spec.memory, which has no default.
func validateSpec(in *v1alpha1.RedisHttpInstanceSpec, hasMemory bool, instance string) (*params, field.ErrorList) {
	root := field.NewPath("spec")
	var errs field.ErrorList
	p := &params{}

	if !hasMemory {
		errs = append(errs, field.Required(root.Child("memory"), "the memory for Redis, for example 256Mi"))
	} else if q, ok := quantity(&in.Memory, root.Child("memory"), &errs); ok {
		if q.Value() < minMemory {
			errs = append(errs, field.Invalid(root.Child("memory"), in.Memory.String(), "must be at least 32Mi"))
		}
		p.Memory = q
		p.Maxmemory = maxmemoryFor(q.Value())
	}

	switch {
	case !redisVersionRE.MatchString(in.RedisVersion):
		errs = append(errs, field.Invalid(root.Child("redisVersion"), in.RedisVersion, `must be a Redis version such as "7.2"`))
	case !atLeast7(in.RedisVersion):
		// ACL v2 (ApiKeys), listpack settings and the config this function
		// writes need Redis 7.
		errs = append(errs, field.Invalid(root.Child("redisVersion"), in.RedisVersion, "must be 7.0 or later"))
	}
	p.Image = "redis:" + in.RedisVersion + "-alpine"
	if in.Image != "" {
		if !imageRE.MatchString(in.Image) {
			errs = append(errs, field.Invalid(root.Child("image"), in.Image, "must be a container image reference such as registry.example.com/redis:7.2-alpine"))
		}
		p.Image, p.ImageFromSpec = in.Image, true
	}

	p.MaxmemoryPolicy = in.MaxmemoryPolicy
	if !slices.Contains(maxmemoryPolicies, p.MaxmemoryPolicy) {
		errs = append(errs, field.NotSupported(root.Child("maxmemoryPolicy"), p.MaxmemoryPolicy, maxmemoryPolicies))
	}

	p.CPURequest, _ = quantity(in.CPU.Request, root.Child("cpu", "request"), &errs)
	p.CPULimit, _ = quantity(in.CPU.Limit, root.Child("cpu", "limit"), &errs)
	if p.CPURequest.Sign() > 0 && p.CPULimit.Sign() > 0 && p.CPURequest.Cmp(p.CPULimit) > 0 {
		errs = append(errs, field.Invalid(root.Child("cpu", "request"), p.CPURequest.String(), fmt.Sprintf("must not be above spec.cpu.limit (%s)", p.CPULimit.String())))
	}

	p.StorageSize, _ = quantity(in.Storage.Size, root.Child("storage", "size"), &errs)
	p.StorageClass = in.Storage.StorageClassName
	if p.StorageClass != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p.StorageClass) {
			errs = append(errs, field.Invalid(root.Child("storage", "storageClassName"), p.StorageClass, msg))
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
	if p.ConnSecretName == contract.AuthSecretName(instance) {
		errs = append(errs, field.Invalid(root.Child("writeConnectionSecretToRef", "name"), p.ConnSecretName, "is the Secret that holds the instance's own password; choose another name"))
	}

	return p, errs
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

// invalidSpecMessage joins field errors into one deterministic line a tenant
// can act on.
func invalidSpecMessage(kind, name string, errs field.ErrorList) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	sort.Strings(msgs)
	return fmt.Sprintf("invalid %s %q: %s", kind, name, strings.Join(msgs, "; "))
}
