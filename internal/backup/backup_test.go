package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/fn"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

const (
	testPassword = "source-admin-password"
	testBucket   = "team-a-backups"
	testPrefix   = "team-a/cache/"
)

// env is a real S3 server with a bucket, and a real redis-server with a
// password, holding n keys of every type.
type env struct {
	s3    *testenv.S3
	redis *testenv.Redis
	store *Store
}

func newEnv(t *testing.T, keys int) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts versitygw and redis-server")
	}
	e := &env{s3: testenv.StartS3(t)}
	e.s3.MakeBucket(t, testBucket)
	// No 5-second wait for more replicas before each snapshot.
	e.redis = testenv.StartRedis(t, "--requirepass", testPassword, "--enable-debug-command", "yes", "--repl-diskless-sync-delay", "0")
	fill(t, e.redis.Addr, testPassword, keys)
	e.store = e.open(t, e.s3.SecretKey)
	return e
}

func (e *env) open(t *testing.T, secret string) *Store {
	t.Helper()
	s, err := OpenStore(S3Options{Endpoint: e.s3.Endpoint, Bucket: testBucket, Prefix: testPrefix, Region: "us-east-1", AccessKey: e.s3.AccessKey, SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) backup(t *testing.T, s *Store, o BackupOptions) (*Manifest, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o.Redis = RedisOptions{Addr: e.redis.Addr, User: "default", Password: testPassword}
	if o.Keep == 0 {
		o.Keep = 7
	}
	return Backup(ctx, s, o)
}

func restoreInto(t *testing.T, s *Store, dir, name string, key *age.X25519Identity) (*Manifest, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Restore(ctx, s, RestoreOptions{Backup: name, DataDir: dir, RDBFile: "dump.rdb", AOFDir: "appendonlydir", Key: key})
}

func client(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password, DisableIdentity: true})
}

// fill writes n keys of every type Redis stores, in their small and large
// encodings, some with a TTL.
func fill(t *testing.T, addr, password string, n int) {
	t.Helper()
	ctx := context.Background()
	c := client(addr, password)
	defer c.Close()
	p := c.Pipeline()
	big := strings.Repeat("compressible ", 10000)
	for i := range n {
		k := fmt.Sprintf("key:%05d", i)
		switch i % 10 {
		case 0:
			p.Set(ctx, k, i, 0) // an integer encoding
		case 1:
			p.Set(ctx, k, "value-"+k, time.Hour)
		case 2:
			p.HSet(ctx, k, "f1", "v1", "f2", i)
		case 3:
			p.RPush(ctx, k, "a", "b", i)
		case 4:
			p.SAdd(ctx, k, 1, 2, i) // intset
		case 5:
			p.SAdd(ctx, k, "x", "y", k)
		case 6:
			p.ZAdd(ctx, k, redis.Z{Score: 1.5, Member: "m"}, redis.Z{Score: float64(i), Member: k})
		case 7:
			p.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: map[string]any{"f": i}})
		case 8:
			p.Set(ctx, k, big+k, 0) // LZF-compressed in the RDB
		default:
			p.Set(ctx, k, "plain", 0)
		}
		if i%500 == 0 {
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// Large encodings: a hash table hash, a skiplist zset, a big list and
	// set, a stream with a consumer group and pending entries.
	for j := range 300 {
		c.HSet(ctx, "big:hash", fmt.Sprint(j), j)
		c.ZAdd(ctx, "big:zset", redis.Z{Score: float64(j), Member: fmt.Sprint(j)})
		c.RPush(ctx, "big:list", j)
		c.SAdd(ctx, "big:set", fmt.Sprintf("m%d", j))
		c.XAdd(ctx, &redis.XAddArgs{Stream: "big:stream", Values: map[string]any{"j": j}})
	}
	if err := c.XGroupCreate(ctx, "big:stream", "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{"big:stream", ">"}, Count: 10}).Err(); err != nil {
		t.Fatal(err)
	}
}

func digest(t *testing.T, addr, password string) (string, int64) {
	t.Helper()
	ctx := context.Background()
	c := client(addr, password)
	defer c.Close()
	d, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d, n
}

// TestBackupRestoreWithAOF is the round trip a tenant relies on: 10,000 keys
// of every type backed up from a Redis with a password, restored into an
// empty data directory of an instance with appendOnly on, prepared by the
// function's prepare-data step, and served by a new redis-server with the
// same digest.
func TestBackupRestoreWithAOF(t *testing.T) {
	e := newEnv(t, 10000)
	wantDigest, wantKeys := digest(t, e.redis.Addr, testPassword)

	m, err := e.backup(t, e.store, BackupOptions{})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if m.Keys != wantKeys || m.Encrypted || m.RDBVersion < 10 || m.RedisVersion == "" || m.Size != m.RDBSize {
		t.Errorf("Backup(...): manifest %+v, want %d keys, unencrypted, RDB 10+, a Redis version", m, wantKeys)
	}

	dir := t.TempDir()
	got, err := restoreInto(t, e.store, dir, Latest, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got.Name != m.Name {
		t.Errorf("Restore(latest) restored %q, want the newest backup %q", got.Name, m.Name)
	}

	conf := filepath.Join(t.TempDir(), "redis.conf")
	if err := os.WriteFile(conf, []byte("dir "+dir+"\nappendonly yes\nrequirepass "+testPassword+"\nenable-debug-command yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := fn.PrepareDataCommand(conf)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDISCLI_AUTH=" + testPassword}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("prepare-data: %v\n%s", err, out)
	}
	r := testenv.StartRedisIn(t, dir, conf)
	gotDigest, gotKeys := digest(t, r.Addr, testPassword)
	if diff := cmp.Diff(fmt.Sprint(wantDigest, wantKeys), fmt.Sprint(gotDigest, gotKeys)); diff != "" {
		t.Errorf("The restored Redis (appendonly yes) holds other data: -want, +got:\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "appendonlydir")); err != nil {
		t.Errorf("The restored Redis should run with its AOF: %v", err)
	}

	// The pod starts again: the marker says the restore happened, and the
	// data Redis wrote since is left alone.
	before, _ := os.ReadFile(filepath.Join(dir, "dump.rdb"))
	if m, err := restoreInto(t, e.store, dir, "20200101T000000Z-000000", nil); err != nil || m.Name != got.Name || m.Keys != 0 {
		t.Errorf("Restore into a directory restored before: got %+v, %v; want it left alone, naming %q", m, err, got.Name)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "dump.rdb")); !bytes.Equal(before, after) {
		t.Errorf("Restore into a directory restored before changed its dump.rdb")
	}
}

// TestRestoreRefusesDataDirWithData proves a restore never overwrites data
// that is not its own.
func TestRestoreRefusesDataDirWithData(t *testing.T) {
	e := newEnv(t, 10)
	if _, err := e.backup(t, e.store, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"dump.rdb", "appendonlydir/appendonly.aof.1.base.rdb"} {
		dir := t.TempDir()
		p := filepath.Join(dir, f)
		_ = os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("tenant data"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := restoreInto(t, e.store, dir, Latest, nil)
		if ReasonOf(err, "") != ReasonDataDirNotEmpty {
			t.Errorf("Restore into a directory holding %s: got %v, want %s", f, err, ReasonDataDirNotEmpty)
		}
		if b, _ := os.ReadFile(p); string(b) != "tenant data" {
			t.Errorf("Restore must leave %s as it was", f)
		}
	}
}

// TestRestoreRefusesCorruptBackup flips one byte of a stored backup: the
// restore fails naming it, and leaves no RDB for Redis to load.
func TestRestoreRefusesCorruptBackup(t *testing.T) {
	e := newEnv(t, 1000)
	m, err := e.backup(t, e.store, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.s3.Dir, testBucket, testPrefix, m.Name+dataSuffix)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the backup's object should be a file under versitygw's directory: %v", err)
	}
	b[len(b)/2] ^= 0xFF
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = restoreInto(t, e.store, dir, Latest, nil)
	if ReasonOf(err, "") != ReasonBackupCorrupt || !strings.Contains(fmt.Sprint(err), m.Name) {
		t.Errorf("Restore of a corrupt backup: got %v, want %s naming %q", err, ReasonBackupCorrupt, m.Name)
	}
	assertEmpty(t, dir)

	// Truncated: the RDB ends early.
	if err := os.WriteFile(p, b[:len(b)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := restoreInto(t, e.store, dir, m.Name, nil); ReasonOf(err, "") != ReasonBackupCorrupt {
		t.Errorf("Restore of a truncated backup: got %v, want %s", err, ReasonBackupCorrupt)
	}
	assertEmpty(t, dir)

	// Missing: the name is not in the bucket.
	if _, err := restoreInto(t, e.store, dir, "20200101T000000Z-000000", nil); ReasonOf(err, "") != ReasonBackupMissing || !strings.Contains(err.Error(), "20200101T000000Z-000000") {
		t.Errorf("Restore of a missing backup: got %v, want %s naming it", err, ReasonBackupMissing)
	}
	assertEmpty(t, dir)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	if len(entries) > 0 {
		t.Errorf("A failed restore must leave the data directory empty; it holds %v", entries)
	}
}

// TestBackupFailuresSayWhy: refused credentials, a missing bucket and an
// unreachable Redis each fail with their own reason, and leave no backup.
func TestBackupFailuresSayWhy(t *testing.T) {
	e := newEnv(t, 10)
	cases := map[string]struct {
		reason string
		store  *Store
		redis  RedisOptions
		want   string
	}{
		"WrongSecret": {
			reason: "A secret key the server does not know is refused credentials.",
			store:  e.open(t, "not-the-secret"),
			want:   ReasonCredentialsRefused,
		},
		"MissingBucket": {
			reason: "A bucket that does not exist says so.",
			store: func() *Store {
				s, _ := OpenStore(S3Options{Endpoint: e.s3.Endpoint, Bucket: "no-such-bucket", Region: "us-east-1", AccessKey: e.s3.AccessKey, SecretKey: e.s3.SecretKey})
				return s
			}(),
			want: ReasonBucketMissing,
		},
		"WrongRedisPassword": {
			reason: "A Redis that refuses the password is RedisUnavailable.",
			store:  e.store,
			redis:  RedisOptions{Addr: e.redis.Addr, User: "default", Password: "wrong"},
			want:   ReasonRedisUnavailable,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			redisOpts := tc.redis
			if redisOpts.Addr == "" {
				redisOpts = RedisOptions{Addr: e.redis.Addr, User: "default", Password: testPassword}
			}
			_, err := Backup(ctx, tc.store, BackupOptions{Redis: redisOpts, Keep: 1})
			if got := ReasonOf(err, ""); got != tc.want {
				t.Errorf("%s\nBackup(...): reason %q (%v), want %q", tc.reason, got, err, tc.want)
			}
			if strings.Contains(fmt.Sprint(err), e.s3.SecretKey) || strings.Contains(fmt.Sprint(err), testPassword) {
				t.Errorf("%s\nBackup(...): the error quotes a secret: %v", tc.reason, err)
			}
		})
	}
	complete, incomplete, err := e.store.Backups(context.Background())
	if err != nil || len(complete)+len(incomplete) > 0 {
		t.Errorf("Failed backups should leave nothing in the bucket: %v %v %v", complete, incomplete, err)
	}
}

// TestEncryptedBackup: the bucket holds no plaintext; the key restores it,
// no key and another key fail saying which.
func TestEncryptedBackup(t *testing.T) {
	e := newEnv(t, 1000)
	c := client(e.redis.Addr, testPassword)
	if err := c.Set(context.Background(), "canary", "tenant-secret-value-4711", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	wantDigest, _ := digest(t, e.redis.Addr, testPassword)
	key, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()

	m, err := e.backup(t, e.store, BackupOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(e.s3.Dir, testBucket, testPrefix, m.Name+dataSuffix+encryptedSuffix))
	if err != nil {
		t.Fatalf("the encrypted object should be %s.rdb.age: %v", m.Name, err)
	}
	if bytes.Contains(stored, []byte("tenant-secret-value-4711")) || bytes.Contains(stored, []byte("REDIS00")) {
		t.Errorf("The bucket's owner can read the encrypted backup")
	}

	for name, tc := range map[string]struct {
		key  *age.X25519Identity
		want string
	}{"NoKey": {nil, ReasonKeyMissing}, "OtherKey": {other, ReasonKeyWrong}} {
		dir := t.TempDir()
		if _, err := restoreInto(t, e.store, dir, Latest, tc.key); ReasonOf(err, "") != tc.want || !strings.Contains(err.Error(), m.Name) {
			t.Errorf("%s: Restore(...): got %v, want %s naming %q", name, err, tc.want, m.Name)
		}
		assertEmpty(t, dir)
	}

	dir := t.TempDir()
	if _, err := restoreInto(t, e.store, dir, Latest, key); err != nil {
		t.Fatalf("Restore with the key: %v", err)
	}
	r := testenv.StartRedisIn(t, dir, "--requirepass", testPassword, "--enable-debug-command", "yes")
	if got, _ := digest(t, r.Addr, testPassword); got != wantDigest {
		t.Errorf("The decrypted restore holds other data: digest %s, want %s", got, wantDigest)
	}
}

// TestRetentionAndIncompleteBackups: keep 2 after 4 runs leaves the newest
// 2; an object without a manifest, though newer, is never restored, and is
// deleted once it is a day old.
func TestRetentionAndIncompleteBackups(t *testing.T) {
	e := newEnv(t, 10)
	var names []string
	for range 4 {
		m, err := e.backup(t, e.store, BackupOptions{Keep: 2})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.Name)
		time.Sleep(time.Second) // names hold the second they were taken
	}
	complete, _, err := e.store.Backups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{names[3], names[2]}, complete); diff != "" {
		t.Errorf("keep 2 after 4 runs: -want, +got:\n%s", diff)
	}
	for _, old := range names[:2] {
		if _, err := os.Stat(filepath.Join(e.s3.Dir, testBucket, testPrefix, old+dataSuffix)); err == nil {
			t.Errorf("The data of deleted backup %s is still there", old)
		}
	}

	// An upload that never got its manifest: a valid RDB, newer than
	// every complete backup.
	dir := t.TempDir()
	if _, err := restoreInto(t, e.store, dir, Latest, nil); err != nil {
		t.Fatal(err)
	}
	rdb, _ := os.ReadFile(filepath.Join(dir, "dump.rdb"))
	orphan := "29991231T235959Z-abcdef"
	if _, err := e.s3.Client(t).PutObject(context.Background(), testBucket, testPrefix+orphan+dataSuffix, bytes.NewReader(rdb), int64(len(rdb)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	m, err := restoreInto(t, e.store, dir2, Latest, nil)
	if err != nil || m.Name != names[3] {
		t.Errorf("Restore(latest) with a newer incomplete object: got %v, %v; want the newest complete backup %s", m, err, names[3])
	}
	if _, err := restoreInto(t, e.store, t.TempDir(), orphan, nil); ReasonOf(err, "") != ReasonBackupMissing {
		t.Errorf("Restore of an incomplete backup by name: got %v, want %s", err, ReasonBackupMissing)
	}
	// A day later, the next backup's retention deletes it.
	if _, err := e.backup(t, e.store, BackupOptions{Keep: 2, Now: func() time.Time { return time.Now().Add(25 * time.Hour) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.s3.Dir, testBucket, testPrefix, orphan+dataSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("An incomplete object a day old should be deleted: %v", err)
	}
}

// TestBackupHoldsNoUsers: ACL users and their passwords never reach the
// bucket.
func TestBackupHoldsNoUsers(t *testing.T) {
	e := newEnv(t, 10)
	c := client(e.redis.Addr, testPassword)
	if err := c.Do(context.Background(), "ACL", "SETUSER", "apikey-user", "on", ">apikey-password-0815", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	m, err := e.backup(t, e.store, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(e.s3.Dir, testBucket, testPrefix, m.Name+dataSuffix))
	for _, s := range []string{"apikey-user", "apikey-password-0815", testPassword} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("The backup holds %q", s)
		}
	}
}
