package fn

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/crossplane/function-sdk-go/resource"
)

// ready reports whether an observed composed resource is ready. The
// StatefulSet is ready when its pod passes the authenticating readiness probe
// at the current generation, the gateway's Deployment when it is Available at
// its current generation; everything else is ready once it exists.
func ready(name resource.Name, observed map[resource.Name]resource.ObservedComposed) resource.Ready {
	oc, ok := observed[name]
	if !ok {
		return resource.ReadyFalse
	}
	switch name {
	case nameStatefulSet:
		if !statefulSetReady(oc) {
			return resource.ReadyFalse
		}
	case nameGatewayDeployment:
		if !deploymentAvailable(oc) {
			return resource.ReadyFalse
		}
	}
	return resource.ReadyTrue
}

func statefulSetReady(oc resource.ObservedComposed) bool {
	u := oc.Resource
	gen, _ := u.GetInteger("metadata.generation")
	observedGen, _ := u.GetInteger("status.observedGeneration")
	readyReplicas, _ := u.GetInteger("status.readyReplicas")
	updated, _ := u.GetInteger("status.updatedReplicas")
	return observedGen >= gen && readyReplicas >= 1 && updated >= 1
}

func deploymentAvailable(oc resource.ObservedComposed) bool {
	u := oc.Resource
	gen, _ := u.GetInteger("metadata.generation")
	observedGen, _ := u.GetInteger("status.observedGeneration")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" && m["status"] == "True" {
			return observedGen >= gen
		}
	}
	return false
}
