// Package local runs a real, local Crossplane control plane for development and
// end-to-end tests, without Docker or a kubelet: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok (simulated nodes) and
// Crossplane core, all built from the Go module proxy (hack/tools.sh); an
// in-memory OCI registry holding this project's packages, installed the way
// users install them; the function and provider binaries running as local
// processes; a PersistentVolume provisioner; and a pod runner that stands in
// for a kubelet (internal/podrunner): it runs each pod whose images can run here
// (Redis, and this project's runtime images from the local registry) as real
// processes in a network namespace holding the pod's IP, and sets the pod's
// Ready condition from its readiness probes. Running pods needs root.
//
// `make dev` (cluster/local/dev) and test/e2e both use it.
package local
