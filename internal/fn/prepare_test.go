package fn

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestPrepareDataFailsSafe proves that when prepare-data cannot do its job
// (here: the password it authenticates with is wrong), it exits non-zero,
// so the pod retries, and leaves the data as it found it: the RDB untouched,
// no half-written AOF that Redis would load instead.
func TestPrepareDataFailsSafe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	testenv.Binary(t, "redis-cli")
	r := testenv.StartRedis(t, "--save", "")
	c := redis.NewClient(&redis.Options{Addr: r.Addr, DisableIdentity: true})
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	r.Stop()
	rdb := filepath.Join(r.Dir, "dump.rdb")
	before, err := os.ReadFile(rdb)
	if err != nil {
		t.Fatalf("no RDB to start from: %v", err)
	}

	conf := filepath.Join(t.TempDir(), "redis.conf")
	if err := os.WriteFile(conf, []byte("dir "+r.Dir+"\nappendonly yes\nrequirepass "+testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prepare := func(password string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", prepareDataScript, prepareDataContainer, conf)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDISCLI_AUTH=" + password}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	out, err := prepare("wrong-password")
	if err == nil {
		t.Fatalf("prepare-data with a wrong password should fail, so the pod retries; it succeeded:\n%s", out)
	}
	after, _ := os.ReadFile(rdb)
	if !bytes.Equal(before, after) {
		t.Errorf("A failed prepare-data must leave dump.rdb as it was")
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "appendonlydir", "appendonly.aof.manifest")); err == nil {
		t.Errorf("A failed prepare-data must not leave an AOF manifest, which Redis would load instead of the RDB")
	}

	// Control: with the right password the same data directory is prepared.
	if out, err := prepare(testPassword); err != nil {
		t.Fatalf("prepare-data with the right password: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "appendonlydir", "appendonly.aof.manifest")); err != nil {
		t.Errorf("prepare-data should have written the AOF: %v", err)
	}
}
