package podrunner

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestRedisExporter(t *testing.T) {
	type want struct {
		argv []string
		err  error
	}
	cases := map[string]struct {
		reason  string
		image   string
		command []string
		args    []string
		want    want
	}{
		"Pinned": {
			reason: "The pinned exporter image runs the Debian exporter with its arguments.",
			image:  "oliver006/redis_exporter:v1.45.0",
			args:   []string{"--redis.user=x"},
			want:   want{argv: []string{"prometheus-redis-exporter", "--redis.user=x"}},
		},
		"Mirror": {
			reason: "A mirror's exporter image, by digest, runs it too.",
			image:  "registry.example.com/mirror/redis_exporter@sha256:abc",
			want:   want{argv: []string{"prometheus-redis-exporter"}},
		},
		"Other": {
			reason: "Another image is not the exporter's to run.",
			image:  "redis:7.2-alpine",
			want:   want{err: ErrNotRunnable},
		},
		"Command": {
			reason:  "A command the image does not hold cannot run.",
			image:   "oliver006/redis_exporter:v1.45.0",
			command: []string{"sh"},
			want:    want{err: ErrNotRunnable},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			argv, err := RedisExporter(context.Background(), tc.image, tc.command, tc.args)
			if diff := cmp.Diff(tc.want.err, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nRedisExporter(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.argv, argv); diff != "" {
				t.Errorf("%s\nRedisExporter(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
