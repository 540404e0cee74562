package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// CrossplaneCoreImage is the package whose schemas `crossplane resource
// validate` loads for Crossplane's own kinds (its --crossplane-image default).
const CrossplaneCoreImage = "xpkg.crossplane.io/crossplane/crossplane:stable"

// CrossplaneSchemaCache returns a fresh cache directory for `crossplane resource
// validate --cache-dir` that already holds Crossplane core's own CRDs under the
// name of CrossplaneCoreImage, so validation never tries to download them.
// The CRDs come from the crds directory hack/tools.sh puts next to the
// crossplane-core binary's bin directory.
func CrossplaneSchemaCache(t testing.TB) string {
	t.Helper()
	crds := filepath.Join(filepath.Dir(ToolDir(t, "crossplane-core")), "crds")
	files, err := filepath.Glob(filepath.Join(crds, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cannot find Crossplane core's CRDs in %s (rebuild them with `hack/tools.sh core`): %v", crds, err)
	}
	var pkg bytes.Buffer
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("cannot read %s: %v", f, err)
		}
		if i > 0 {
			pkg.WriteString("\n---\n")
		}
		pkg.Write(bytes.TrimSpace(b))
	}
	pkg.WriteByte('\n')

	// The CLI keys its cache by image reference with ':' replaced by '@'.
	cache := t.TempDir()
	dir := filepath.Join(cache, "xpkg.crossplane.io", "crossplane", "crossplane@stable")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatalf("cannot create the schema cache: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.yaml"), pkg.Bytes(), 0o600); err != nil {
		t.Fatalf("cannot seed the schema cache: %v", err)
	}
	return cache
}
