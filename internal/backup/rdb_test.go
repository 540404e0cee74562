package backup

import (
	"bufio"
	"bytes"
	"context"
	"hash/crc64"
	"os"
	"path/filepath"
	"testing"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestRedisCRC checks the CRC against the check value of Redis's crc64.c.
func TestRedisCRC(t *testing.T) {
	got := ^crc64.Update(^uint64(0), redisCRC, []byte("123456789"))
	if want := uint64(0xe9c6d914c4b8d9ca); got != want {
		t.Errorf("crc64(123456789) = %x, want %x", got, want)
	}
}

// TestReadRDBRefusesDamage: an RDB written by redis-server reads with the
// right key count; cut anywhere, or with any byte changed, it is refused.
func TestReadRDBRefusesDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", testPassword)
	fill(t, r.Addr, testPassword, 200)
	c := client(r.Addr, testPassword)
	if err := c.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	n, _ := c.DBSize(context.Background()).Result()
	_ = c.Close()
	file, err := os.ReadFile(filepath.Join(r.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	info, err := ReadRDB(bufio.NewReader(bytes.NewReader(file)), &out)
	if err != nil {
		t.Fatalf("ReadRDB(dump.rdb): %v", err)
	}
	if info.Keys != n || info.Size != int64(len(file)) || !bytes.Equal(out.Bytes(), file) {
		t.Errorf("ReadRDB(dump.rdb): %d keys, %d bytes, passed on %d bytes; want %d keys and all %d bytes", info.Keys, info.Size, out.Len(), n, len(file))
	}
	step := max(1, len(file)/300)
	for i := 0; i < len(file); i += step {
		if _, err := ReadRDB(bufio.NewReader(bytes.NewReader(file[:i])), nil); err == nil {
			t.Errorf("ReadRDB of the first %d of %d bytes succeeded; want an error", i, len(file))
		}
		bad := bytes.Clone(file)
		bad[i] ^= 0x5A
		if _, err := ReadRDB(bufio.NewReader(bytes.NewReader(bad)), nil); err == nil {
			t.Errorf("ReadRDB with byte %d of %d changed succeeded; want an error", i, len(file))
		}
	}
}
