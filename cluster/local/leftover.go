package local

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Leftover is what a stopped control plane leaves in its directory: the
// tenants' data in its volumes and the cluster's state.
type Leftover struct {
	// Dir is the control plane's directory.
	Dir string
	// Volumes is how many PersistentVolume directories there are, Bytes
	// what their files hold.
	Volumes int
	Bytes   int64
}

// LeftoverIn measures what the stopped control plane in dir leaves.
func LeftoverIn(dir string) (Leftover, error) {
	l := Leftover{Dir: dir}
	vols, err := os.ReadDir(filepath.Join(dir, "volumes"))
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, errors.Wrap(err, "cannot list the volumes")
	}
	for _, v := range vols {
		if !v.IsDir() {
			continue
		}
		l.Volumes++
		err := filepath.WalkDir(filepath.Join(dir, "volumes", v.Name()), func(_ string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err == nil {
				l.Bytes += fi.Size()
			}
			return err
		})
		if err != nil {
			return l, errors.Wrapf(err, "cannot measure volume %s", v.Name())
		}
	}
	return l, nil
}

// String says where the data is and how it goes.
func (l Leftover) String() string {
	volumes := "volumes"
	if l.Volumes == 1 {
		volumes = "volume"
	}
	return fmt.Sprintf("tenant data is kept in %s (%d %s, %.1f MiB) and the cluster's objects in %s: "+
		"the next `make dev` starts afresh and deletes both; `make dev-down PURGE=1` deletes them now",
		filepath.Join(l.Dir, "volumes"), l.Volumes, volumes, float64(l.Bytes)/(1<<20), filepath.Join(l.Dir, "etcd"))
}

// Purge deletes a stopped control plane's directory, data and all. It
// refuses a directory that does not look like one (no pids directory), so a
// wrong --dir cannot delete something else.
func Purge(dir string) error {
	if fi, err := os.Stat(filepath.Join(dir, "pids")); err != nil || !fi.IsDir() {
		return errors.Errorf("%s is not a local control plane's directory (no pids directory): not deleting it", dir)
	}
	if pids, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid")); len(pids) > 0 {
		return errors.Errorf("processes of %s are still running (%d pid files): not deleting it", dir, len(pids))
	}
	return errors.Wrapf(os.RemoveAll(dir), "cannot delete %s", dir)
}
