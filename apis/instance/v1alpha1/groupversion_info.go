package v1alpha1

import "k8s.io/apimachinery/pkg/runtime/schema"

// Package type metadata.
const (
	Group   = "redishttp.io"
	Version = "v1alpha1"
)

// SchemeGroupVersion is group version used to register these objects.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Kinds of the tenant-facing API.
const (
	// RedisHttpInstanceKind is the kind tenants write, in both modes: the claim
	// kind in claim mode and the XR kind in namespaced mode.
	RedisHttpInstanceKind = "RedisHttpInstance"
	// XRedisHttpInstanceKind is the cluster-scoped (LegacyCluster) XR behind a
	// claim in claim mode.
	XRedisHttpInstanceKind = "XRedisHttpInstance"
)
