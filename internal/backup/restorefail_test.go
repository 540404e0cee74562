package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreDataDirFailuresSayWhy: a restore that cannot write its data
// directory says so with its own reason, never that the directory holds data
// (TestRestoreRefusesDataDirWithData) or that the backup is corrupt.
func TestRestoreDataDirFailuresSayWhy(t *testing.T) {
	e := newEnv(t, 10)
	m, err := e.backup(t, e.store, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		dir    func(t *testing.T) string
		want   string
	}{
		"Missing": {
			reason: "A data directory that does not exist cannot be written.",
			dir:    func(t *testing.T) string { return filepath.Join(t.TempDir(), "no-such-dir") },
			want:   ReasonDataDirNotWritable,
		},
		"NotADirectory": {
			reason: "A data directory that is a file cannot be written.",
			dir: func(t *testing.T) string {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return f
			},
			want: ReasonDataDirNotWritable,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := tc.dir(t)
			_, err := restoreInto(t, e.store, dir, m.Name, nil)
			if got := ReasonOf(err, ""); got != tc.want {
				t.Errorf("%s\nRestore(...): reason %q (%v), want %q", tc.reason, got, err, tc.want)
			}
			if !strings.Contains(fmt.Sprint(err), m.Name) || !strings.Contains(fmt.Sprint(err), dir) {
				t.Errorf("%s\nRestore(...): the error should name the backup and the directory: %v", tc.reason, err)
			}
		})
	}
}

// fullVolumeEnv is set in the child process of TestRestoreIntoFullVolume.
const fullVolumeEnv = "REDISHTTP_TEST_FULL_VOLUME"

// TestRestoreIntoFullVolume restores a backup into a data directory on a
// volume too small for it (a 4 KiB tmpfs, mounted in a private mount
// namespace by unshare: root only, skipped elsewhere): the restore fails
// with DataVolumeFull saying what to do, not as a corrupt backup, and leaves
// nothing behind.
func TestRestoreIntoFullVolume(t *testing.T) {
	if dir := os.Getenv(fullVolumeEnv); dir != "" {
		restoreInChild(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare")
	}
	e := newEnv(t, 50)
	m, err := e.backup(t, e.store, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Size < 16<<10 {
		t.Fatalf("the backup is %d bytes: too small to fill a 4 KiB volume", m.Size)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=4k tmpfs "$1" || { echo "cannot mount"; exit 3; }; exec "$2" -test.run '^TestRestoreIntoFullVolume$' -test.v`,
		"sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), fullVolumeEnv+"="+dir, "S3_ENDPOINT="+e.s3.Endpoint, "S3_ACCESS="+e.s3.AccessKey, "S3_SECRET="+e.s3.SecretKey, "BACKUP="+m.Name)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "cannot mount") {
		t.Skipf("cannot mount a tmpfs here: %s", out)
	}
	if err != nil {
		t.Fatalf("the restore in a private mount namespace: %v\n%s", err, out)
	}
	t.Logf("the restore in a 4 KiB volume:\n%s", out)
	want := fmt.Sprintf("reason=%s entries=0", ReasonDataVolumeFull)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "spec.storage.size") {
		t.Errorf("Restore(...) into a full volume: want %q and a message naming spec.storage.size, got:\n%s", want, out)
	}
}

// restoreInChild restores into dir (the small tmpfs) and prints the reason
// and what the directory holds afterwards.
func restoreInChild(t *testing.T, dir string) {
	t.Helper()
	s, err := OpenStore(S3Options{Endpoint: os.Getenv("S3_ENDPOINT"), Bucket: testBucket, Prefix: testPrefix, Region: "us-east-1", AccessKey: os.Getenv("S3_ACCESS"), SecretKey: os.Getenv("S3_SECRET")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = restoreInto(t, s, dir, os.Getenv("BACKUP"), nil)
	entries, _ := os.ReadDir(dir)
	t.Logf("reason=%s entries=%d: %v", ReasonOf(err, ""), len(entries), err)
}
