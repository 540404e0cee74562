package fn

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/resource/composite"
)

// Labels Crossplane puts on a legacy XR created for a claim.
const (
	labelClaimName      = "crossplane.io/claim-name"
	labelClaimNamespace = "crossplane.io/claim-namespace"
)

// An instance is where and under which name a tenant's Redis lives, whichever
// mode it was created in. Everything downstream works from it alone, so claim
// mode and namespaced mode share one code path.
type instance struct {
	// Name is the name the tenant gave: the claim's name in claim mode, the
	// XR's in namespaced mode. Composed objects are named after it.
	Name string
	// Namespace is the tenant's namespace, where every object is composed.
	Namespace string
	// Claim is true in claim mode, where connection details travel through
	// Crossplane's claim connection Secret instead of a composed Secret.
	Claim bool
}

// instanceOf finds the tenant's name and namespace for an observed XR: a
// namespaced XR carries them itself; a legacy (cluster-scoped) XR carries its
// claim's in labels and spec.claimRef.
func instanceOf(xr *composite.Unstructured) (*instance, error) {
	if ns := xr.GetNamespace(); ns != "" {
		return &instance{Name: xr.GetName(), Namespace: ns}, nil
	}
	in := &instance{Claim: true, Name: xr.GetLabels()[labelClaimName], Namespace: xr.GetLabels()[labelClaimNamespace]}
	if ref := xr.GetClaimReference(); ref != nil {
		if in.Name == "" {
			in.Name = ref.Name
		}
		if in.Namespace == "" {
			in.Namespace = ref.Namespace
		}
	}
	if in.Name == "" || in.Namespace == "" {
		return nil, fmt.Errorf("%s %q has no claim: create a %s in your namespace instead of the cluster-scoped %s",
			shown(xr.GetKind()), shown(xr.GetName()), v1alpha1.RedisHttpInstanceKind, v1alpha1.XRedisHttpInstanceKind)
	}
	return in, nil
}

// endpoint is the in-cluster DNS name of an instance's Service.
func endpoint(in *instance, clusterDomain string) string {
	return contract.ServiceHost(in.Name, in.Namespace, clusterDomain)
}

// maxNameLength is the longest instance name whose composed names all stay
// valid: the StatefulSet's controller-revision-hash label value is
// "<StatefulSet name>-<10-character hash>", and label values are at most 63
// characters.
var maxNameLength = validation.LabelValueMaxLength - len(contract.StatefulSetName("")+"-") - 10

// validateName checks that every name derived from the instance's stays valid.
func validateName(in *instance) error {
	if n := len(in.Name); n > maxNameLength {
		return fmt.Errorf("instance name %q is too long: %d characters, at most %d fit in the names and labels of its StatefulSet and Services",
			shown(in.Name), n, maxNameLength)
	}
	// Service names are DNS-1035 labels: claims may be named "my.cache" or
	// "1cache", which their Services cannot.
	if msgs := validation.IsDNS1035Label(contract.ServiceName(in.Name)); len(msgs) > 0 {
		return fmt.Errorf("instance name %q cannot name its Service %q: use lowercase letters, digits and '-', starting with a letter", shown(in.Name), shown(contract.ServiceName(in.Name)))
	}
	return nil
}

// labels are on every object composed for an instance.
func labels(in *instance) map[string]string {
	return map[string]string{
		contract.LabelName:      contract.NameRedis,
		contract.LabelInstance:  in.Name,
		contract.LabelManagedBy: contract.ManagedBy,
	}
}

// selector selects the instance's Redis pod.
func selector(in *instance) map[string]string {
	return map[string]string{
		contract.LabelName:     contract.NameRedis,
		contract.LabelInstance: in.Name,
	}
}
