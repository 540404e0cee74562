// Package instance holds the tenant-facing RedisHttpInstance API; the XRDs of
// both Configuration packages are generated from its Go types.
package instance

//go:generate go tool controller-gen object:headerFile=../../hack/boilerplate.go.txt paths=./...
//go:generate go run ../../hack/xrdgen -types ./v1alpha1 -claim ../../package/configuration/xrd.yaml -namespaced ../../package/configuration-namespaced/xrd.yaml
