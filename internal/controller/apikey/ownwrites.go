package apikey

import (
	"maps"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
)

// notOwnWrites drops the update events of the reconciler's own writes while
// it creates a user: the external name it sets and the creation annotations.
// The reconcile that wrote them is still running, and asks for the next one
// itself; reconciling again for each of them costs a reconcile of the global
// rate limit and three reads per new ApiKey, for nothing.
func notOwnWrites() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return !ownWrite(e.ObjectOld, e.ObjectNew) }}
}

// ownWrite reports whether an update changed nothing but what the reconciler
// writes while it creates a user.
func ownWrite(was, is client.Object) bool {
	if was == nil || is == nil || was.GetGeneration() != is.GetGeneration() || !maps.Equal(was.GetLabels(), is.GetLabels()) {
		return false
	}
	a, b := maps.Clone(was.GetAnnotations()), maps.Clone(is.GetAnnotations())
	for _, k := range []string{meta.AnnotationKeyExternalCreatePending, meta.AnnotationKeyExternalCreateSucceeded, meta.AnnotationKeyExternalCreateFailed} {
		delete(a, k)
		delete(b, k)
	}
	// The external name set for the first time; a changed one is the
	// tenant's.
	if a[meta.AnnotationKeyExternalName] == "" {
		delete(a, meta.AnnotationKeyExternalName)
		delete(b, meta.AnnotationKeyExternalName)
	}
	return maps.Equal(a, b)
}
