package fn

import (
	"github.com/crossplane/function-sdk-go/resource"
)

// ready reports whether an observed composed resource is ready. The
// StatefulSet is ready when its pod passes the authenticating readiness probe
// at the current generation; everything else is ready once it exists.
func ready(name resource.Name, observed map[resource.Name]resource.ObservedComposed) resource.Ready {
	oc, ok := observed[name]
	if !ok {
		return resource.ReadyFalse
	}
	if name != nameStatefulSet {
		return resource.ReadyTrue
	}
	if statefulSetReady(oc) {
		return resource.ReadyTrue
	}
	return resource.ReadyFalse
}

func statefulSetReady(oc resource.ObservedComposed) bool {
	u := oc.Resource
	gen, _ := u.GetInteger("metadata.generation")
	observedGen, _ := u.GetInteger("status.observedGeneration")
	readyReplicas, _ := u.GetInteger("status.readyReplicas")
	updated, _ := u.GetInteger("status.updatedReplicas")
	return observedGen >= gen && readyReplicas >= 1 && updated >= 1
}
