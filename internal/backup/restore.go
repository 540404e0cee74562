package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"filippo.io/age"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// Latest names the newest complete backup in a restore.
const Latest = contract.BackupLatest

// RestoredMarker is the file a restore leaves in the data directory; a
// later start of the same pod finds it and leaves the data alone.
const RestoredMarker = ".redishttp-restored"

// RestoreOptions configure a restore.
type RestoreOptions struct {
	// Backup is a backup's name or Latest.
	Backup string
	// DataDir is Redis's data directory; RDBFile the file name Redis loads
	// (dbfilename), AOFDir the append-only directory (appenddirname).
	DataDir string
	RDBFile string
	AOFDir  string
	// Key opens encrypted backups.
	Key *age.X25519Identity
	// RedisVersion is the version of the Redis that will load the backup
	// (7.2, 7.0.15...): a backup in a newer RDB format than it loads is
	// refused. Empty or unknown: not checked.
	RedisVersion string
	Log          func(msg string, kv ...any)
}

// Restore writes a verified backup into an empty data directory as the RDB
// file Redis loads at start. It returns the manifest of the backup restored;
// when the directory was restored before (the marker is there, the pod
// started again) it leaves it alone and returns a manifest with only the
// name the marker holds. A
// directory that holds data is never overwritten. Every failure is an
// *Error naming the backup.
func Restore(ctx context.Context, s *Store, o RestoreOptions) (*Manifest, error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if b, err := os.ReadFile(filepath.Join(o.DataDir, RestoredMarker)); err == nil {
		o.Log("The data directory was restored before; leaving it alone", "backup", string(b))
		return &Manifest{Name: string(b)}, nil
	}
	for _, f := range []string{o.RDBFile, o.AOFDir} {
		if fi, err := os.Stat(filepath.Join(o.DataDir, f)); err == nil && (fi.IsDir() || fi.Size() > 0) {
			return nil, &Error{Reason: ReasonDataDirNotEmpty, Err: fmt.Errorf("refusing to restore into %s: it already holds %s (the volume has data; restore into a new instance)", o.DataDir, f)}
		}
	}
	name := o.Backup
	if name == "" || name == Latest {
		complete, _, err := s.Backups(ctx)
		if err != nil {
			return nil, err
		}
		if len(complete) == 0 {
			return nil, &Error{Reason: ReasonBackupMissing, Err: fmt.Errorf("there is no complete backup under %s", s.Where())}
		}
		name = complete[0]
	} else if !ValidName(name) {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: fmt.Errorf("%q is not a backup name (like 20261204T191600Z-3fa9c1) or %q", name, Latest)}
	}
	m, err := restore(ctx, s, name, o)
	if err != nil {
		return nil, &Error{Reason: ReasonOf(err, ReasonBackupCorrupt), Err: fmt.Errorf("cannot restore backup %q from %s: %w", name, s.Where(), err)}
	}
	return m, nil
}

func restore(ctx context.Context, s *Store, name string, o RestoreOptions) (*Manifest, error) {
	m, err := s.Manifest(ctx, name)
	if err != nil {
		if ReasonOf(err, "") == ReasonBackupMissing {
			return nil, &Error{Reason: ReasonBackupMissing, Err: errors.New("it has no manifest: it does not exist or is incomplete")}
		}
		return nil, err
	}
	if err := checkLoads(o.RedisVersion, m.RDBVersion, m.RedisVersion); err != nil {
		return nil, err
	}
	if m.Encrypted && o.Key == nil {
		return nil, &Error{Reason: ReasonKeyMissing, Err: errors.New("it is encrypted and no encryption key was given: set encryptionKeySecretRef to the key it was made with")}
	}
	o.Log("Restoring", "backup", name, "keys", m.Keys, "bytes", m.Size)
	obj, err := s.get(ctx, s.dataKey(name, m.Encrypted))
	if err != nil {
		return nil, err
	}
	defer obj.Close() //nolint:errcheck // Read-only.

	storedHash := sha256.New()
	stored := &countingReader{r: io.TeeReader(obj, storedHash)}
	var plain io.Reader = stored
	if m.Encrypted {
		if plain, err = age.Decrypt(stored, o.Key); err != nil {
			if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
				return nil, &Error{Reason: ReasonKeyWrong, Err: errors.New("the encryption key given is not the one it was made with")}
			}
			return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("cannot decrypt it: %w", err)}
		}
	}

	tmp, err := os.CreateTemp(o.DataDir, ".restore-*")
	if err != nil {
		return nil, dataDirError(o.DataDir, m, err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // Renamed away on success.
	defer tmp.Close()           //nolint:errcheck // Closed explicitly on success.

	rdbHash := sha256.New()
	src := bufio.NewReaderSize(plain, 1<<20)
	w := bufio.NewWriterSize(io.MultiWriter(tmp, rdbHash), 1<<20)
	info, err := ReadRDB(src, w)
	if err != nil {
		if _, ok := errors.AsType[*writeError](err); ok {
			return nil, dataDirError(o.DataDir, m, err)
		}
		return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("it is not a valid RDB file: %w", err)}
	}
	if err := w.Flush(); err != nil {
		return nil, dataDirError(o.DataDir, m, err)
	}
	// The file itself, whatever its manifest says.
	if err := checkLoads(o.RedisVersion, info.Version, info.RedisVersion); err != nil {
		return nil, err
	}
	// Nothing may follow the RDB, and an encrypted stream authenticates its
	// last chunk only when read to its end.
	if n, err := io.Copy(io.Discard, src); err != nil {
		return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("it cannot be read to its end: %w", err)}
	} else if n > 0 {
		return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("it has %d bytes after the RDB file", n)}
	}
	if _, err := io.Copy(io.Discard, stored); err != nil {
		return nil, &Error{Reason: ReasonBackupUnreadable, Err: err}
	}
	got := hex.EncodeToString(storedHash.Sum(nil))
	switch {
	case stored.n != m.Size || got != m.SHA256:
		return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("its object is %d bytes with SHA-256 %s; the manifest says %d bytes with %s", stored.n, got, m.Size, m.SHA256)}
	case hex.EncodeToString(rdbHash.Sum(nil)) != m.RDBSHA256 || info.Keys != m.Keys:
		return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("its RDB holds %d keys and does not match the manifest (%d keys)", info.Keys, m.Keys)}
	}
	if err := tmp.Sync(); err != nil {
		return nil, dataDirError(o.DataDir, m, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, dataDirError(o.DataDir, m, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(o.DataDir, o.RDBFile)); err != nil {
		return nil, dataDirError(o.DataDir, m, err)
	}
	if err := os.WriteFile(filepath.Join(o.DataDir, RestoredMarker), []byte(name), 0o600); err != nil {
		return nil, dataDirError(o.DataDir, m, err)
	}
	if d, err := os.Open(o.DataDir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	o.Log("Restored", "backup", name, "keys", info.Keys)
	return m, nil
}

// dataDirError is a failure to write the restored file into the data
// directory: the volume's fault, not the backup's.
func dataDirError(dir string, m *Manifest, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return &Error{Reason: ReasonDataVolumeFull, Err: fmt.Errorf("cannot write to %s: the volume is full (the backup's RDB is about %d bytes): create the instance with a larger spec.storage.size: %w", dir, m.Size, err)}
	}
	return &Error{Reason: ReasonDataDirNotWritable, Err: fmt.Errorf("cannot write to %s: %w", dir, err)}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
