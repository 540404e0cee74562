package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Tool returns the path of a pinned tool binary (for example "crossplane",
// "crossplane-core", "etcd", "kube-apiserver"), or skips or fails t when it is
// not available. See the package documentation.
func Tool(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range filepath.SplitList(os.Getenv("REDISHTTP_TOOLS_BIN")) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	missing(t, name+" (run the tests with `make test`, which builds it with hack/tools.sh)")
	return ""
}

// Binary returns the path of a system binary such as redis-server, or skips or
// fails t when it is not installed.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name+" (install it with `apt-get install redis-server redis-tools`; `make test` does)")
	}
	return p
}

// ToolDir returns the directory that holds a pinned tool, for example the
// directory envtest wants as KUBEBUILDER_ASSETS.
func ToolDir(t testing.TB, name string) string {
	t.Helper()
	return filepath.Dir(Tool(t, name))
}

// Required reports whether missing tools fail tests instead of skipping them.
func Required() bool { return os.Getenv("REDISHTTP_REQUIRE_TOOLS") == "1" }

func missing(t testing.TB, what string) {
	t.Helper()
	if Required() {
		t.Fatalf("required tool is missing: %s", what)
	}
	t.Skipf("skipping: %s is not available", what)
}

// Root skips or fails t unless the test runs as root, which network
// namespaces (pods run by internal/podrunner, the local control plane) need.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root (pods get their own network namespace; run as root or in a VM or container)")
	}
}
