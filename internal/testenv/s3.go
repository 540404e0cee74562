package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// An S3 is a real S3 server (versitygw, built by hack/tools.sh) serving a
// temporary directory with its posix backend.
type S3 struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// Port is the port it listens on.
	Port int
	// AccessKey and SecretKey are its root credentials.
	AccessKey string
	SecretKey string
	// Dir holds the buckets: objects are plain files under Dir/<bucket>/.
	Dir string
}

// StartS3 starts versitygw on a free loopback port and stops it when the
// test ends. It skips or fails t when versitygw is not built (see Tool).
func StartS3(t testing.TB) *S3 {
	t.Helper()
	return startS3(t, "127.0.0.1")
}

// StartS3ForPods starts versitygw like StartS3, listening on every address
// of the machine: the local platform's pods reach it at their gateway
// address (podrunner.HostIP), which exists only while a pod runs.
func StartS3ForPods(t testing.TB) *S3 {
	t.Helper()
	return startS3(t, "0.0.0.0")
}

func startS3(t testing.TB, host string) *S3 {
	t.Helper()
	bin := Tool(t, "versitygw")
	s := &S3{AccessKey: "test-access", SecretKey: "test-secret-" + fmt.Sprint(time.Now().UnixNano()), Dir: t.TempDir(), Port: FreePort(t)}
	listen := fmt.Sprintf("%s:%d", host, s.Port)
	addr := fmt.Sprintf("127.0.0.1:%d", s.Port)
	s.Endpoint = "http://" + addr
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", listen, "posix", s.Dir)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatalf("cannot create versitygw's log: %v", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return s
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw exited instead of listening on %s:\n%s", addr, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns an S3 client with the root credentials.
func (s *S3) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatalf("cannot create an S3 client: %v", err)
	}
	return c
}

// MakeBucket creates a bucket through the S3 API (a bare directory is not a
// bucket to versitygw).
func (s *S3) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("cannot create bucket %q: %v", name, err)
	}
}
