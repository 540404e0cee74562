package version

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStampLands builds every binary under cmd/ as make build does, stamped
// with LDFlag, and asks each for its --version: a binary added to cmd/ is
// checked without editing this test, and a stamp that misses the variable
// (a moved package, a typo in the path) fails here instead of shipping
// binaries that do not know their version.
func TestStampLands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mains, err := filepath.Glob(filepath.Join(root, "cmd", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("cannot find the binaries under cmd/: %v", err)
	}
	const stamped = "v9.8.7-stamp.1"
	bin := t.TempDir()
	// The flags of a plain go build, so that only linking is not cached.
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags", LDFlag(stamped), "-o", bin+string(filepath.Separator), "./cmd/...")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(m))
		t.Run(name, func(t *testing.T) {
			// No other flag: --version answers before kong checks required ones.
			out, err := exec.CommandContext(t.Context(), filepath.Join(bin, name), "--version").Output()
			if err != nil {
				t.Fatalf("%s --version: %v", name, err)
			}
			if diff := cmp.Diff(stamped+"\n", string(out)); diff != "" {
				t.Errorf("%s --version: -want, +got:\n%s", name, diff)
			}
		})
	}
}
