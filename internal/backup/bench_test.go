package backup

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestBenchBackup measures backup and restore throughput for a dataset of
// REDISHTTP_BENCH_BACKUP_MB megabytes (make bench-backup: 1024), beside two
// anchors taken in the same run on the same servers: the raw RDB transfer
// (redis-cli --rdb to a file) and a plain S3 upload of those bytes. Figures
// only: it fails on errors, never on a time.
func TestBenchBackup(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("REDISHTTP_BENCH_BACKUP_MB"))
	if mb <= 0 {
		t.Skip("set REDISHTTP_BENCH_BACKUP_MB (make bench-backup)")
	}
	e := newEnv(t, 0)
	ctx := context.Background()
	c := client(e.redis.Addr, testPassword)
	// Random values: DEBUG POPULATE's compress to almost nothing in an RDB.
	const valueSize = 1000
	buf := make([]byte, valueSize)
	for i := 0; i < mb*1000; i += 1000 {
		p := c.Pipeline()
		for j := i; j < i+1000; j++ {
			_, _ = rand.Read(buf)
			p.Set(ctx, fmt.Sprintf("key:%d", j), buf, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.Close()

	start := time.Now()
	rdb := filepath.Join(t.TempDir(), "raw.rdb")
	cmd := exec.Command(testenv.Binary(t, "redis-cli"), "-h", "127.0.0.1", "-p", strconv.Itoa(e.redis.Port), "--rdb", rdb)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+testPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --rdb: %v\n%s", err, out)
	}
	raw := time.Since(start)
	fi, _ := os.Stat(rdb)
	size := float64(fi.Size()) / (1 << 20)

	start = time.Now()
	if _, err := e.s3.Client(t).FPutObject(ctx, testBucket, "anchor/raw.rdb", rdb, minio.PutObjectOptions{PartSize: partSize}); err != nil {
		t.Fatal(err)
	}
	upload := time.Since(start)

	start = time.Now()
	long, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	m, err := Backup(long, e.store, BackupOptions{Redis: RedisOptions{Addr: e.redis.Addr, User: "default", Password: testPassword}, Keep: 7})
	if err != nil {
		t.Fatal(err)
	}
	backup := time.Since(start)

	dir := t.TempDir()
	start = time.Now()
	if _, err := Restore(long, e.store, RestoreOptions{Backup: m.Name, DataDir: dir, RDBFile: "dump.rdb", AOFDir: "appendonlydir"}); err != nil {
		t.Fatal(err)
	}
	restore := time.Since(start)

	rate := func(d time.Duration) float64 { return size / d.Seconds() }
	t.Logf("dataset: %d keys, RDB %.0f MiB", m.Keys, size)
	t.Logf("anchor redis-cli --rdb to a file:   %6.1f MiB/s", rate(raw))
	t.Logf("anchor plain S3 upload of the RDB:  %6.1f MiB/s", rate(upload))
	t.Logf("backup (snapshot, parse, upload, read back, manifest): %6.1f MiB/s = %.2fx the raw transfer, %.2fx the plain upload", rate(backup), raw.Seconds()/backup.Seconds(), upload.Seconds()/backup.Seconds())
	t.Logf("restore (download, verify, write dump.rdb):            %6.1f MiB/s = %.2fx the plain upload", rate(restore), upload.Seconds()/restore.Seconds())
}
