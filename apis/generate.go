// Package apis contains Kubernetes API types of the redishttp provider.
//
// Generated files are produced by `go generate ./...` (`make generate`) and are
// never edited by hand: controller-gen writes the deepcopy methods next to the
// types and the CRDs into package/provider/crds; angryjet writes the
// crossplane-runtime method sets (conditions, provider config references...)
// into zz_generated.{managed,managedlist,pc,pcu,pculist}.go. angryjet is pinned
// in hack/angryjet.mod, its own module file, so that its dependencies do not
// move the provider's pinned k8s.io modules.
package apis

// Remove old CRDs first so a renamed or deleted type leaves nothing behind.
//go:generate rm -rf ../package/provider/crds

//go:generate go tool controller-gen object:headerFile=../hack/boilerplate.go.txt paths=./v1alpha1/... crd:crdVersions=v1 output:artifacts:config=../package/provider/crds

//go:generate go tool -modfile=../hack/angryjet.mod angryjet generate-methodsets --header-file=../hack/boilerplate.go.txt ./v1alpha1/...
