package backup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

func TestReadsUpTo(t *testing.T) {
	cases := map[string]struct {
		version string
		rdb     int
		known   bool
	}{
		"7.0":             {"7.0", 10, true},
		"7.0.15":          {"7.0.15", 10, true},
		"7.2-alpine":      {"7.2-alpine", 11, true},
		"7.2.4":           {"7.2.4", 11, true},
		"7.4":             {"7.4", 12, true},
		"7.3 reads 7.2's": {"7.3", 11, true},
		"newer line":      {"8.0", 0, false},
		"older line":      {"5.0", 0, false},
		"not a version":   {"latest", 0, false},
		"empty":           {"", 0, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if rdb, known := readsUpTo(tc.version); rdb != tc.rdb || known != tc.known {
				t.Errorf("readsUpTo(%q): want %d %t, got %d %t", tc.version, tc.rdb, tc.known, rdb, known)
			}
		})
	}
}

// TestRestoreRefusesNewerRDB: a backup in an RDB format newer than the
// target Redis loads is refused before anything is written, naming both
// versions; this machine's real redis-server shows why (it refuses to start
// with such a file), and the table of formats matches what it writes.
func TestRestoreRefusesNewerRDB(t *testing.T) {
	e := newEnv(t, 100)
	m, err := e.backup(t, e.store, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rdb, known := readsUpTo(m.RedisVersion); !known || rdb != m.RDBVersion {
		t.Fatalf("redis-server %s writes RDB format %d; the table says it loads up to %d (known %t)", m.RedisVersion, m.RDBVersion, rdb, known)
	}

	// The same backup as the next Redis line would write it: the header's
	// format one newer, the checksum and the manifest made to match.
	p := filepath.Join(e.s3.Dir, testBucket, testPrefix, m.Name+dataSuffix)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	newer := m.RDBVersion + 1
	copy(b[5:9], fmt.Sprintf("%04d", newer))
	// Redis's CRC-64 does not invert (hash/crc64 does, before and after).
	binary.LittleEndian.PutUint64(b[len(b)-8:], ^crc64.Update(^uint64(0), redisCRC, b[:len(b)-8]))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	forged := *m
	forged.RDBVersion, forged.RedisVersion = newer, "7.2.4"
	forged.SHA256, forged.RDBSHA256 = hex.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.store.putManifest(ctx, &forged); err != nil {
		t.Fatal(err)
	}

	// This machine's Redis cannot load it: left to Redis, the instance
	// would crash-loop.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	out, err := exec.CommandContext(rctx, testenv.Binary(t, "redis-server"), "--port", fmt.Sprint(testenv.FreePort(t)), "--bind", "127.0.0.1", "--dir", dir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no").CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("RDB format version %d", newer)) {
		t.Fatalf("redis-server %s should refuse RDB format %d at start: %v\n%s", m.RedisVersion, newer, err, out)
	}

	cases := map[string]struct {
		reason  string
		version string
		refused bool
	}{
		"SameVersion":    {reason: "The Redis that made the original cannot load the newer format: refused.", version: m.RedisVersion, refused: true},
		"SpecVersion":    {reason: "spec.redisVersion 7.0 (the image's tag): refused.", version: "7.0", refused: true},
		"NewerRedis":     {reason: "A Redis of the next line loads it: restored.", version: "7.2"},
		"UnknownVersion": {reason: "An image tag naming no version: not checked, restored.", version: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Restore(ctx, e.store, RestoreOptions{Backup: m.Name, DataDir: dir, RDBFile: "dump.rdb", AOFDir: "appendonlydir", RedisVersion: tc.version})
			if !tc.refused {
				if err != nil {
					t.Errorf("%s\nRestore(...): %v", tc.reason, err)
				}
				return
			}
			msg := fmt.Sprint(err)
			if ReasonOf(err, "") != ReasonRedisTooOld || !strings.Contains(msg, m.Name) || !strings.Contains(msg, "Redis 7.2.4 (RDB format 11)") || !strings.Contains(msg, "runs Redis "+tc.version+", which loads RDB formats up to 10") {
				t.Errorf("%s\nRestore(...): want %s naming the backup and both versions, got %v", tc.reason, ReasonRedisTooOld, err)
			}
			assertEmpty(t, dir)
		})
	}
}
