package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
)

// BackupOptions configure one backup.
type BackupOptions struct {
	Redis RedisOptions
	// Keep is how many complete backups to keep (at least 1).
	Keep int
	// Key, when set, encrypts the backup for its own recipient.
	Key *age.X25519Identity
	// Log receives one line per step; never a secret.
	Log func(msg string, kv ...any)
	// Now is the clock, for tests.
	Now func() time.Time
}

// orphanAge is how old a data object without a manifest must be before it
// is deleted: younger ones may belong to a backup still being verified.
const orphanAge = 24 * time.Hour

// Backup takes one snapshot of Redis into s, verifies it, writes its
// manifest and applies retention. It returns the manifest of the new
// backup; an error is an *Error with the reason.
func Backup(ctx context.Context, s *Store, o BackupOptions) (*Manifest, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Keep < 1 {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: fmt.Errorf("keep must be at least 1, not %d", o.Keep)}
	}
	if err := s.Check(ctx); err != nil {
		return nil, err
	}
	m := &Manifest{Format: manifestFormat, Name: newName(o.Now()), Time: o.Now().UTC().Truncate(time.Second), Encrypted: o.Key != nil}
	key := s.dataKey(m.Name, m.Encrypted)
	o.Log("Taking a snapshot", "backup", m.Name, "object", key)

	snap, err := OpenSnapshot(ctx, o.Redis)
	if err != nil {
		return nil, &Error{Reason: ReasonRedisUnavailable, Err: err}
	}
	defer snap.Close() //nolint:errcheck // Finish closes it too.
	m.RedisVersion = snap.RedisVersion

	stored, err := upload(ctx, s, key, snap, o.Key, m)
	if err != nil {
		return nil, err
	}
	o.Log("Uploaded", "backup", m.Name, "bytes", m.Size, "keys", m.Keys)

	// Read the object back: what the bucket returns is what a restore
	// gets.
	if err := verifyObject(ctx, s, key, m.Size, stored); err != nil {
		return nil, err
	}
	if err := s.putManifest(ctx, m); err != nil {
		return nil, err
	}
	o.Log("Verified", "backup", m.Name)
	if err := retain(ctx, s, o.Keep, o.Now(), o.Log); err != nil {
		return m, err
	}
	return m, nil
}

// upload streams the snapshot to key, parsing and hashing it on the way,
// and fills in m. It returns the stored object's SHA-256.
func upload(ctx context.Context, s *Store, key string, snap *Snapshot, id *age.X25519Identity, m *Manifest) (string, error) {
	pr, pw := io.Pipe()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := s.put(ctx, key, pr)
		_ = pr.CloseWithError(err)
		done <- result{n, err}
	}()

	storedHash, rdbHash := sha256.New(), sha256.New()
	stored := &countingWriter{w: io.MultiWriter(pw, storedHash)}
	var enc io.WriteCloser
	out := io.MultiWriter(stored, rdbHash)
	if id != nil {
		var err error
		if enc, err = age.Encrypt(stored, id.Recipient()); err != nil {
			_ = pw.CloseWithError(err)
			<-done
			return "", fmt.Errorf("cannot start encrypting: %w", err)
		}
		out = io.MultiWriter(enc, rdbHash)
	}
	info, err := ReadRDB(snap.Reader(), out)
	if err == nil {
		err = snap.Finish(info.Size)
	}
	if err == nil && enc != nil {
		err = enc.Close()
	}
	if err != nil {
		_ = pw.CloseWithError(err)
		up := <-done
		var we *writeError
		switch {
		case errors.As(err, &we) && up.err != nil:
			return "", up.err
		case errors.Is(err, ErrRedis):
			return "", &Error{Reason: ReasonRedisUnavailable, Err: err}
		default:
			return "", &Error{Reason: ReasonVerificationFailed, Err: fmt.Errorf("the snapshot Redis sent is not a valid RDB file: %w", err)}
		}
	}
	_ = pw.Close()
	up := <-done
	if up.err != nil {
		return "", up.err
	}
	if up.n != stored.n {
		return "", &Error{Reason: ReasonUploadFailed, Err: fmt.Errorf("the bucket stored %d bytes of %d", up.n, stored.n)}
	}
	m.Size, m.SHA256 = stored.n, hex.EncodeToString(storedHash.Sum(nil))
	m.RDBSize, m.RDBSHA256 = info.Size, hex.EncodeToString(rdbHash.Sum(nil))
	m.RDBVersion, m.Keys = info.Version, info.Keys
	if m.RedisVersion == "" {
		m.RedisVersion = info.RedisVersion
	}
	return m.SHA256, nil
}

// verifyObject reads key back and compares its length and SHA-256.
func verifyObject(ctx context.Context, s *Store, key string, size int64, sum string) error {
	r, err := s.get(ctx, key)
	if err != nil {
		return &Error{Reason: ReasonVerificationFailed, Err: err}
	}
	defer r.Close() //nolint:errcheck // Read-only.
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return &Error{Reason: ReasonVerificationFailed, Err: fmt.Errorf("cannot read %s back: %w", key, err)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return &Error{Reason: ReasonVerificationFailed, Err: fmt.Errorf("%s read back is %d bytes with SHA-256 %s; %d bytes with %s were uploaded", key, n, got, size, sum)}
	}
	return nil
}

// retain deletes complete backups beyond the newest keep, and data objects
// that have had no manifest for orphanAge. A manifest goes before its data,
// so an interrupted deletion leaves an incomplete object, never a manifest
// without data.
func retain(ctx context.Context, s *Store, keep int, now time.Time, log func(string, ...any)) error {
	complete, incomplete, err := s.Backups(ctx)
	if err != nil {
		return err
	}
	for i, name := range complete {
		if i < keep {
			continue
		}
		m, err := s.Manifest(ctx, name)
		encrypted := err == nil && m.Encrypted
		if err := s.remove(ctx, s.manifestKey(name)); err != nil {
			return err
		}
		for _, k := range []string{s.dataKey(name, encrypted), s.dataKey(name, !encrypted)} {
			if err := s.remove(ctx, k); err != nil {
				return err
			}
		}
		log("Deleted a backup beyond keep", "backup", name, "keep", keep)
	}
	for _, o := range incomplete {
		if now.Sub(o.LastModified) < orphanAge {
			continue
		}
		if err := s.remove(ctx, o.Key); err != nil {
			return err
		}
		log("Deleted an incomplete backup", "object", o.Key)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
