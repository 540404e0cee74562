package podrunner

import "context"

// A Source reads what a pod's volumes and environment refer to, in the pod's
// namespace.
type Source interface {
	// ConfigMap returns the data (and binary data) of a ConfigMap.
	ConfigMap(ctx context.Context, name string) (map[string][]byte, error)
	// Secret returns the data of a Secret.
	Secret(ctx context.Context, name string) (map[string][]byte, error)
	// ClaimDir returns the local directory holding a bound
	// PersistentVolumeClaim's volume.
	ClaimDir(ctx context.Context, claim string) (string, error)
	// ServiceAccountToken returns a token of the pod's service account for
	// audience (the API server's when empty), bound to the pod, as the
	// kubelet requests for a projected serviceAccountToken volume.
	ServiceAccountToken(ctx context.Context, audience string, expirationSeconds int64) ([]byte, error)
}
