package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLeftover checks what dev-down says stays behind, and that --purge
// deletes a stopped control plane's directory but nothing that is not one,
// nor one whose processes still run.
func TestLeftover(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"pids", "etcd", "volumes/pv-a/appendonlydir", "volumes/pv-b"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for p, size := range map[string]int{"volumes/pv-a/dump.rdb": 1 << 20, "volumes/pv-a/appendonlydir/x.aof": 512 << 10, "volumes/pv-b/dump.rdb": 0} {
		if err := os.WriteFile(filepath.Join(dir, p), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LeftoverIn(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Leftover{Dir: dir, Volumes: 2, Bytes: 3 << 19}, got); diff != "" {
		t.Errorf("LeftoverIn(...): -want, +got:\n%s", diff)
	}
	msg := got.String()
	for _, want := range []string{filepath.Join(dir, "volumes"), "2 volumes, 1.5 MiB", "make dev-down PURGE=1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Leftover.String() = %q: want it to say %q", msg, want)
		}
	}

	none, err := LeftoverIn(filepath.Join(dir, "absent"))
	if err != nil || none.Volumes != 0 {
		t.Errorf("LeftoverIn(a directory never started) = %+v, %v: want no volumes, no error", none, err)
	}

	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Purge(other); err == nil {
		t.Error("Purge(a directory without pids) succeeded: a wrong --dir would delete it")
	}
	if _, err := os.Stat(filepath.Join(other, "keep")); err != nil {
		t.Errorf("Purge(a directory without pids) deleted its files: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids", "001-etcd.pid"), []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Purge(dir); err == nil {
		t.Error("Purge(a directory with pid files left) succeeded: its processes may still run")
	}
	if err := os.Remove(filepath.Join(dir, "pids", "001-etcd.pid")); err != nil {
		t.Fatal(err)
	}
	if err := Purge(dir); err != nil {
		t.Fatalf("Purge(a stopped control plane): %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Purge(...) left %s: %v", dir, err)
	}
}
