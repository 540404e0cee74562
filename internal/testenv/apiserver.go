package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// A ControlPlane is a real etcd and kube-apiserver, the ones hack/tools.sh
// builds from the Go module proxy, started by controller-runtime's envtest.
type ControlPlane struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config

	env *envtest.Environment
}

// StartControlPlane starts etcd and kube-apiserver, installs the CRDs found in
// crdDirs (directories or files of CustomResourceDefinition YAML), waits until
// they are established, and stops both servers when the test ends. It skips or
// fails t when the binaries are missing (see Tool).
func StartControlPlane(t testing.TB, crdDirs ...string) *ControlPlane {
	t.Helper()
	// envtest wants one directory holding both binaries; they live in
	// different cache directories, so link them into one.
	assets := t.TempDir()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if err := os.Symlink(Tool(t, name), filepath.Join(assets, name)); err != nil {
			t.Fatalf("cannot link %s into the envtest assets directory: %v", name, err)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
		CRDInstallOptions:     envtest.CRDInstallOptions{MaxTime: 30 * time.Second},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("cannot start etcd and kube-apiserver: %v", err)
	}
	cp := &ControlPlane{Config: cfg, env: env}
	t.Cleanup(func() {
		// envtest stops kube-apiserver before etcd, which keeps the
		// apiserver from hanging on shutdown.
		if err := env.Stop(); err != nil {
			t.Logf("cannot stop the control plane: %v", err)
		}
	})
	return cp
}
