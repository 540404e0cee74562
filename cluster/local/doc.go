// Package local runs a real, local Crossplane control plane for development and
// end-to-end tests, without Docker or a kubelet: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok (simulated nodes) and
// Crossplane core, all built from the Go module proxy (hack/tools.sh); an
// in-memory OCI registry holding this project's packages, installed the way
// users install them; the function and provider binaries running as local
// processes; a PersistentVolume provisioner; and a pod runner that stands in
// for a kubelet by running each composed Redis pod as a real redis-server
// process on the pod's own (loopback) IP.
//
// `make dev` (cluster/local/dev) and test/e2e both use it.
package local
