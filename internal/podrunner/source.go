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
}
