// Package apis contains Kubernetes API types of the redishttp provider.
//
// Generated files are produced by `go generate ./...` (`make generate`) and are
// never edited by hand: controller-gen writes the deepcopy methods next to the
// types and the CRDs into package/provider/crds. The crossplane-runtime method
// sets (conditions, provider config references...) are small and hand-written
// in apis/v1alpha1, so no unversioned generator (angryjet) is needed.
package apis

// Remove old CRDs first so a renamed or deleted type leaves nothing behind.
//go:generate rm -rf ../package/provider/crds

//go:generate go tool controller-gen object:headerFile=../hack/boilerplate.go.txt paths=./v1alpha1/... crd:crdVersions=v1 output:artifacts:config=../package/provider/crds
