package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestRunReportsItsResult runs the command line as the backup job and the
// restore init container run it (main's options, environment only) against
// a bucket nobody serves: it must exit non-zero and leave its reason and
// message where Kubernetes reads the termination message.
func TestRunReportsItsResult(t *testing.T) {
	cases := map[string]struct {
		reason string
		args   []string
		env    map[string]string
	}{
		"Backup": {
			reason: "A backup that cannot reach its bucket says so in its termination message.",
			args:   []string{"backup"}, env: map[string]string{"REDIS_ADDRESS": "127.0.0.1:1"},
		},
		"Restore": {
			reason: "A restore that cannot reach its bucket says so in its termination message.",
			args:   []string{"restore"}, env: map[string]string{"DATA_DIR": "DATA"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			term := filepath.Join(dir, "termination-log")
			t.Setenv("S3_ENDPOINT", fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)))
			t.Setenv("S3_BUCKET", "tenant-backups")
			t.Setenv("TERMINATION_LOG", term)
			t.Setenv("AWS_ACCESS_KEY_ID", "access")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-never-printed")
			for k, v := range tc.env {
				t.Setenv(k, strings.ReplaceAll(v, "DATA", dir))
			}
			var out bytes.Buffer
			log := slog.New(slog.NewTextHandler(&out, nil))
			parser, err := kong.New(&CLI{}, options(log)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, err := parser.Parse(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if code := run(ctx, log); code != 1 {
				t.Errorf("%s\nrun(...): want exit code 1, got %d", tc.reason, code)
			}
			b, err := os.ReadFile(term)
			if err != nil {
				t.Fatalf("%s\nno termination message: %v\nlog:\n%s", tc.reason, err, out.String())
			}
			res := contract.BackupResult{}
			if err := json.Unmarshal(b, &res); err != nil || res.Reason == "" || !strings.Contains(res.Message, "tenant-backups") {
				t.Errorf("%s\ntermination message %q: want a reason and a message naming the bucket (%v)", tc.reason, b, err)
			}
			if strings.Contains(string(b)+out.String(), "secret-never-printed") {
				t.Errorf("%s\nthe secret key was printed", tc.reason)
			}
		})
	}
}

// TestRestoreOnlyInTheSeedPod runs the restore as a replica's init container
// runs it: with RESTORE_POD naming another pod it restores nothing, reaches
// no bucket, writes nothing into the data directory and exits 0.
func TestRestoreOnlyInTheSeedPod(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	term := filepath.Join(dir, "termination-log")
	for k, v := range map[string]string{
		"S3_ENDPOINT": fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)), "S3_BUCKET": "tenant-backups", "TERMINATION_LOG": term,
		"DATA_DIR": data, "HOSTNAME": "cache-redis-1", "RESTORE_POD": "cache-redis-0",
	} {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	parser, err := kong.New(&CLI{}, options(log)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := parser.Parse([]string{"restore"})
	if err != nil {
		t.Fatal(err)
	}
	if code := run(ctx, log); code != 0 {
		t.Errorf("run(...): want exit code 0, got %d\nlog:\n%s", code, out.String())
	}
	b, err := os.ReadFile(term)
	if err != nil {
		t.Fatalf("no termination message: %v", err)
	}
	if diff := cmp.Diff(contract.BackupResult{}, mustResult(t, b)); diff != "" {
		t.Errorf("termination message: -want, +got:\n%s", diff)
	}
	if entries, err := os.ReadDir(data); err != nil || len(entries) != 0 {
		t.Errorf("the data directory of a pod that does not restore: want it empty, got %v (%v)", entries, err)
	}
}

func mustResult(t *testing.T, b []byte) contract.BackupResult {
	t.Helper()
	res := contract.BackupResult{}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("termination message %q: %v", b, err)
	}
	return res
}
