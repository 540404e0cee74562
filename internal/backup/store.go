package backup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options say where backups live and how to reach them.
type S3Options struct {
	Endpoint  string // http(s)://host[:port]
	Bucket    string
	Prefix    string // object names start with it; "" or ending in "/"
	Region    string
	AccessKey string
	SecretKey string
	// CAFile, when set, holds the PEM certificates that sign the endpoint's
	// certificate (a private CA); the system roots are used otherwise.
	CAFile string
}

// A Store is a bucket and prefix holding backups.
type Store struct {
	c      *minio.Client
	bucket string
	prefix string
}

// partSize is the multipart upload's part: the memory an upload holds (one
// part at a time), and a 160 GiB ceiling on one backup (10,000 parts).
const partSize = 16 << 20

// maxManifest bounds the manifest read back from the bucket.
const maxManifest = 64 << 10

// OpenStore returns a Store for o. It does not contact the endpoint.
func OpenStore(o S3Options) (*Store, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: fmt.Errorf("the S3 endpoint must be http(s)://host[:port] without path or credentials, not %q", o.Endpoint)}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // The standard library's own type.
	tr.ResponseHeaderTimeout = time.Minute
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, &Error{Reason: ReasonInvalidConfig, Err: fmt.Errorf("cannot read the CA bundle: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &Error{Reason: ReasonInvalidConfig, Err: errors.New("the CA bundle holds no PEM certificate")}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:    u.Scheme == "https",
		Region:    o.Region,
		Transport: tr,
	})
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: fmt.Errorf("cannot create the S3 client: %w", err)}
	}
	return &Store{c: c, bucket: o.Bucket, prefix: o.Prefix}, nil
}

// Where is the store's location as messages show it.
func (s *Store) Where() string { return "s3://" + s.bucket + "/" + s.prefix }

// Check fails when the bucket cannot be reached or does not exist.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return s3Error(fmt.Sprintf("cannot reach bucket %q", s.bucket), err, ReasonUploadFailed)
	}
	if !ok {
		return &Error{Reason: ReasonBucketMissing, Err: fmt.Errorf("bucket %q does not exist", s.bucket)}
	}
	return nil
}

// An object in the store.
type object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// list returns the objects directly under the prefix.
func (s *Store) list(ctx context.Context) ([]object, error) {
	var out []object
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix}) {
		if o.Err != nil {
			return nil, s3Error("cannot list "+s.Where(), o.Err, ReasonUploadFailed)
		}
		out = append(out, object{Key: o.Key, Size: o.Size, LastModified: o.LastModified})
	}
	return out, nil
}

// Backups lists the complete backups (a manifest and its data object both
// present), newest first, and the data objects without a manifest.
func (s *Store) Backups(ctx context.Context) (complete []string, incomplete []object, err error) {
	objs, err := s.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	data := map[string]object{}
	manifests := map[string]bool{}
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, s.prefix)
		if name, ok := strings.CutSuffix(rest, manifestSuffix); ok && ValidName(name) {
			manifests[name] = true
			continue
		}
		for _, suf := range []string{dataSuffix, dataSuffix + encryptedSuffix} {
			if name, ok := strings.CutSuffix(rest, suf); ok && ValidName(name) {
				data[name] = o
			}
		}
	}
	for name, o := range data {
		if manifests[name] {
			complete = append(complete, name)
		} else {
			incomplete = append(incomplete, o)
		}
	}
	// Names start with their UTC time, so they sort by age.
	slices.Sort(complete)
	slices.Reverse(complete)
	return complete, incomplete, nil
}

func (s *Store) manifestKey(name string) string { return s.prefix + name + manifestSuffix }

func (s *Store) dataKey(name string, encrypted bool) string {
	if encrypted {
		return s.prefix + name + dataSuffix + encryptedSuffix
	}
	return s.prefix + name + dataSuffix
}

// put uploads r (of unknown length) as key, in parts.
func (s *Store) put(ctx context.Context, key string, r io.Reader) (int64, error) {
	info, err := s.c.PutObject(ctx, s.bucket, key, r, -1, minio.PutObjectOptions{
		PartSize:    partSize,
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return 0, s3Error("cannot upload "+key, err, ReasonUploadFailed)
	}
	return info.Size, nil
}

// get opens key for reading.
func (s *Store) get(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Error("cannot read "+key, err, ReasonBackupUnreadable)
	}
	// GetObject is lazy: Stat makes the request and reports a missing key.
	if _, err := o.Stat(); err != nil {
		_ = o.Close()
		return nil, s3Error("cannot read "+key, err, ReasonBackupUnreadable)
	}
	return o, nil
}

// putManifest writes m next to its backup.
func (s *Store) putManifest(ctx context.Context, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, s.bucket, s.manifestKey(m.Name), strings.NewReader(string(b)), int64(len(b)), minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		return s3Error("cannot write the manifest of "+m.Name, err, ReasonUploadFailed)
	}
	return nil
}

// Manifest reads the manifest of backup name.
func (s *Store) Manifest(ctx context.Context, name string) (*Manifest, error) {
	r, err := s.get(ctx, s.manifestKey(name))
	if err != nil {
		return nil, err
	}
	defer r.Close() //nolint:errcheck // Read-only.
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return nil, s3Error("cannot read the manifest of "+name, err, ReasonBackupUnreadable)
	}
	m := &Manifest{}
	if len(b) > maxManifest || json.Unmarshal(b, m) != nil || m.Name != name || m.Format != manifestFormat {
		return nil, &Error{Reason: ReasonBackupCorrupt, Err: fmt.Errorf("the manifest of backup %q is not one this version writes", name)}
	}
	return m, nil
}

// remove deletes key.
func (s *Store) remove(ctx context.Context, key string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s3Error("cannot delete "+key, err, ReasonUploadFailed)
	}
	return nil
}

// s3Error classifies an S3 failure: refused credentials and a missing
// bucket are the tenant's to fix and say so; anything else gets reason.
func s3Error(what string, err error, reason string) error {
	code := minio.ToErrorResponse(err).Code
	switch code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidSecurity":
		reason = ReasonCredentialsRefused
	case "NoSuchBucket":
		reason = ReasonBucketMissing
	case "NoSuchKey":
		reason = ReasonBackupMissing
	}
	return &Error{Reason: reason, Err: fmt.Errorf("%s: %w", what, err)}
}
