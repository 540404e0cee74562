package podrunner

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ai-decenter/redishttp/internal/xpkg"
)

func TestRedis(t *testing.T) {
	type args struct {
		image         string
		command, args []string
	}
	type want struct {
		argv []string
		err  error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"Command": {
			reason: "A command should run as written.",
			args:   args{image: "redis:7.2-alpine", command: []string{"redis-server"}, args: []string{"/etc/redis/redis.conf"}},
			want:   want{argv: []string{"redis-server", "/etc/redis/redis.conf"}},
		},
		"ShellScript": {
			reason: "A sh -c start script should run as written, with this machine's sh.",
			args:   args{image: "docker.io/library/redis:7.0", command: []string{"sh", "-c", "exec redis-server /c"}},
			want:   want{argv: []string{"sh", "-c", "exec redis-server /c"}},
		},
		"EntrypointConf": {
			reason: "The image's entrypoint runs redis-server for a leading .conf argument.",
			args:   args{image: "redis:7.2", args: []string{"/etc/redis/redis.conf"}},
			want:   want{argv: []string{"redis-server", "/etc/redis/redis.conf"}},
		},
		"EntrypointFlag": {
			reason: "The image's entrypoint runs redis-server for a leading flag.",
			args:   args{image: "redis@sha256:0123", args: []string{"--port", "7000"}},
			want:   want{argv: []string{"redis-server", "--port", "7000"}},
		},
		"EntrypointCommand": {
			reason: "Other arguments are the command to run.",
			args:   args{image: "redis", args: []string{"redis-cli", "ping"}},
			want:   want{argv: []string{"redis-cli", "ping"}},
		},
		"Default": {
			reason: "Without command or arguments the image runs redis-server.",
			args:   args{image: "mirror.example.com:5000/lib/redis:7"},
			want:   want{argv: []string{"redis-server"}},
		},
		"NotRedis": {
			reason: "Another image is not for this resolver.",
			args:   args{image: "127.0.0.1:5000/x/provider-redishttp:v0.1.0"},
			want:   want{err: ErrNotRunnable},
		},
		"RedisInName": {
			reason: "Only the repository's last element counts: redis-exporter is not Redis.",
			args:   args{image: "oliver006/redis_exporter:v1"},
			want:   want{err: ErrNotRunnable},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			argv, err := Redis(context.Background(), tc.args.image, tc.args.command, tc.args.args)
			if diff := cmp.Diff(tc.want, want{argv: argv, err: err}, cmp.AllowUnexported(want{}), cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nRedis(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	prefix := strings.TrimPrefix(srv.URL, "http://") + "/org"
	bin := filepath.Join(t.TempDir(), "gateway")
	script := "#!/bin/sh\necho gateway\n"
	if err := os.WriteFile(bin, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	img, err := xpkg.RuntimeImage(bin, "/gateway")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(prefix+"/gateway-redishttp:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	r := Registry(prefix, cache, "gateway-redishttp")
	d, _ := img.Digest()
	extracted := filepath.Join(cache, d.Hex, "gateway")

	type want struct {
		argv []string
		err  error
	}
	cases := map[string]struct {
		reason        string
		image         string
		command, args []string
		want          want
	}{
		"Entrypoint": {
			reason: "The image's entrypoint should run from the binary taken out of the image, with the container's args.",
			image:  prefix + "/gateway-redishttp:v1",
			args:   []string{"--redis-address=cache-redis:6379"},
			want:   want{argv: []string{extracted, "--redis-address=cache-redis:6379"}},
		},
		"Command": {
			reason:  "A command naming the binary in the image should run that binary.",
			image:   prefix + "/gateway-redishttp:v1",
			command: []string{"/gateway"}, args: []string{"--debug"},
			want: want{argv: []string{extracted, "--debug"}},
		},
		"OtherRepository": {
			reason: "A repository of the registry that is not listed (a package) is not for this resolver.",
			image:  prefix + "/provider-redishttp:v1",
			want:   want{err: ErrNotRunnable},
		},
		"OtherRegistry": {
			reason: "An image of another registry is not for this resolver.",
			image:  "xpkg.example.org/org/gateway-redishttp:v1",
			want:   want{err: ErrNotRunnable},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			argv, err := r(context.Background(), tc.image, tc.command, tc.args)
			if diff := cmp.Diff(tc.want, want{argv: argv, err: err}, cmp.AllowUnexported(want{}), cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nRegistry(...)(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
	b, err := os.ReadFile(extracted)
	if err != nil || string(b) != script {
		t.Errorf("The binary taken out of the image should be the one put in: got %q, %v", b, err)
	}
}
