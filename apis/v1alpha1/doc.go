// Package v1alpha1 contains the redishttp.io/v1alpha1 provider API: the ApiKey
// managed resource (one Redis ACL user per app) and the ProviderConfig,
// ClusterProviderConfig and their usage types.
// +kubebuilder:object:generate=true
// +groupName=redishttp.io
// +versionName=v1alpha1
package v1alpha1
