package backup

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"time"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// Object names: <prefix><name>.rdb (.rdb.age when encrypted) and
// <prefix><name>.manifest.json, where name is the backup's UTC time and a
// random suffix (two jobs started in the same second do not collide).
const (
	dataSuffix      = ".rdb"
	encryptedSuffix = ".age"
	manifestSuffix  = ".manifest.json"
	nameTime        = "20060102T150405Z"
	manifestFormat  = 1
)

var nameRE = regexp.MustCompile(contract.BackupNameRE)

// ValidName reports whether name is a backup's name as this package makes
// them, e.g. 20261204T191600Z-3fa9c1.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// newName names a backup taken at t.
func newName(t time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return t.UTC().Format(nameTime) + "-" + hex.EncodeToString(b)
}

// A Manifest describes a complete, verified backup. It is written after the
// backup's data object was read back and matched.
type Manifest struct {
	Format int       `json:"format"`
	Name   string    `json:"name"`
	Time   time.Time `json:"time"`
	// Size and SHA256 are those of the stored object (encrypted or not).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// RDBSize and RDBSHA256 are those of the RDB file itself.
	RDBSize      int64  `json:"rdbSize"`
	RDBSHA256    string `json:"rdbSha256"`
	Encrypted    bool   `json:"encrypted"`
	RedisVersion string `json:"redisVersion"`
	RDBVersion   int    `json:"rdbVersion"`
	Keys         int64  `json:"keys"`
}
