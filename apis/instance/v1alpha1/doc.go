// Package v1alpha1 holds the tenant-facing RedisHttpInstance API. It is the one
// source of truth for the schemas of both XRDs (claim mode and namespaced mode),
// which hack/xrdgen generates from these types, and it is what the composition
// function decodes an instance's spec into.
// +kubebuilder:object:generate=true
// +groupName=redishttp.io
// +versionName=v1alpha1
package v1alpha1
