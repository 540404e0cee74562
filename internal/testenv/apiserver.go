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

// startTimeout bounds a control plane's start and its CRDs' establishment: a
// deadline for a hung start, not a measure (the machine may be busy).
const startTimeout = 3 * time.Minute

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
		CRDInstallOptions:     envtest.CRDInstallOptions{MaxTime: startTimeout},
		// envtest gives each process 20 s to start: kube-apiserver took
		// 20 s on this machine while other tests ran (local.Start logs it).
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  time.Minute,
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

// Kubeconfig writes a kubeconfig of an administrator (system:masters) to a
// file in a temporary directory and returns its path, for processes such as
// the provider binary that read KUBECONFIG.
func (cp *ControlPlane) Kubeconfig(t testing.TB) string {
	t.Helper()
	u, err := cp.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("cannot add an admin user: %v", err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatalf("cannot write a kubeconfig: %v", err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("cannot write a kubeconfig: %v", err)
	}
	return p
}

// InstallCRDs installs the CRDs found in paths (directories or files) and
// waits until they are established, for tests that install CRDs after a
// controller started (safe-start).
func (cp *ControlPlane) InstallCRDs(t testing.TB, paths ...string) {
	t.Helper()
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{
		Paths:              paths,
		ErrorIfPathMissing: true,
		MaxTime:            startTimeout,
	}); err != nil {
		t.Fatalf("cannot install CRDs from %v: %v", paths, err)
	}
}

// InstanceCRD is a stand-in CRD for the tenant instance,
// redishttp.io/v1alpha1 RedisHttpInstance, for tests of what reads it: the
// real type is defined by a Crossplane XRD (claim or namespaced XR), which
// only Crossplane turns into a CRD. It accepts any spec.
const InstanceCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: redishttpinstances.redishttp.io
spec:
  group: redishttp.io
  names: {kind: RedisHttpInstance, listKind: RedisHttpInstanceList, plural: redishttpinstances, singular: redishttpinstance}
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// WriteInstanceCRD writes InstanceCRD into a temporary directory and returns
// the directory, for StartControlPlane or InstallCRDs.
func WriteInstanceCRD(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "redishttpinstances.yaml"), []byte(InstanceCRD), 0o600); err != nil {
		t.Fatalf("cannot write the instance CRD: %v", err)
	}
	return dir
}
