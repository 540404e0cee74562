package local

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestMapPaths(t *testing.T) {
	mounts := map[string]string{"/etc/redis": "/l/cfg", "/etc/redis-auth": "/l/auth", "/data": "/l/pv"}
	cases := map[string]struct {
		reason string
		in     string
		want   string
	}{
		"ConfigArgument": {
			reason: "A file under a mount point should map to the local directory.",
			in:     "/etc/redis/redis.conf",
			want:   "/l/cfg/redis.conf",
		},
		"SiblingMount": {
			reason: "A mount point should match only as a whole path element, so /etc/redis-auth maps to its own directory.",
			in:     "include /etc/redis-auth/password.conf\ndir /data\n",
			want:   "include /l/auth/password.conf\ndir /l/pv\n",
		},
		"QuotedAndEmbedded": {
			reason: "Quoted paths map; a mount point inside a longer word does not.",
			in:     `dir "/data" x/data /database`,
			want:   `dir "/l/pv" x/data /database`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mapPaths(tc.in, mounts)); diff != "" {
				t.Errorf("%s\nmapPaths(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"PW": "s3cret", "PORT": "6379"}
	cases := map[string]struct {
		reason string
		in     string
		want   string
	}{
		"Reference":  {reason: "A known $(VAR) should be replaced by its value.", in: "--requirepass $(PW)", want: "--requirepass s3cret"},
		"Unknown":    {reason: "An unknown reference should stay as written, as Kubernetes does.", in: "$(NOPE):$(PORT)", want: "$(NOPE):6379"},
		"Escaped":    {reason: "$$ should produce a literal $ and suppress expansion.", in: "$$(PW)", want: "$(PW)"},
		"PlainShell": {reason: "A shell-style $VAR is not a Kubernetes reference and should stay.", in: "$PW", want: "$PW"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, expand(tc.in, env)); diff != "" {
				t.Errorf("%s\nexpand(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRedisArgv(t *testing.T) {
	cases := map[string]struct {
		reason string
		ctr    corev1.Container
		want   []string
	}{
		"Command": {
			reason: "A container whose command is redis-server should run as written.",
			ctr:    corev1.Container{Command: []string{"redis-server"}, Args: []string{"/etc/redis/redis.conf"}},
			want:   []string{"redis-server", "/etc/redis/redis.conf"},
		},
		"ImageEntrypoint": {
			reason: "The official image runs redis-server for a leading .conf argument.",
			ctr:    corev1.Container{Image: "redis:7.2-alpine", Args: []string{"/etc/redis/redis.conf"}},
			want:   []string{"redis-server", "/etc/redis/redis.conf"},
		},
		"NotRedis": {
			reason: "Other containers (the provider's runtime Deployment) are not run.",
			ctr:    corev1.Container{Image: "127.0.0.1:5000/x/provider-redishttp:v0.1.0"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, redisArgv(tc.ctr)); diff != "" {
				t.Errorf("%s\nredisArgv(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
