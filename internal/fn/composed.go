package fn

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/crossplane/function-sdk-go/errors"
	"github.com/crossplane/function-sdk-go/resource/composed"
)

// scheme knows the kinds this function composes. It is the function's own:
// toComposed needs only their group, version and kind.
var scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, batchv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // Only if the API packages' own registrations conflict.
		}
	}
	return s
}

// toComposed converts a typed object into a desired composed resource.
//
// It does what composed.From does, with Kubernetes' unstructured converter,
// which follows the standard library's JSON rules (omitempty drops zero
// numbers and false booleans) without a JSON round trip. composed.From's JSON v2
// keeps them, so every desired object would carry fields such as nodePort: 0,
// hostPort: 0 or stdin: false, and server-side apply would make Crossplane
// their owner though we hold no opinion on them. Nulls (creationTimestamp) and
// status, which is not ours to set, are dropped too.
func toComposed(o runtime.Object) (*composed.Unstructured, error) {
	gvks, _, err := scheme.ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return nil, errors.Wrapf(err, "cannot find the kind of %T", o)
	}
	o.GetObjectKind().SetGroupVersionKind(gvks[0])
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, errors.Wrapf(err, "cannot convert %T", o)
	}
	delete(m, "status")
	prune(m)
	u := composed.New()
	u.SetUnstructuredContent(m)
	return u, nil
}

// prune removes null values, and status fields of embedded objects (such as
// a StatefulSet's PVC templates), recursively.
func prune(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if val == nil {
				delete(t, k)
				continue
			}
			if sm, ok := val.(map[string]any); ok && k == "status" && len(sm) == 0 {
				delete(t, k)
				continue
			}
			prune(val)
		}
	case []any:
		for _, e := range t {
			prune(e)
		}
	}
}
