package fn

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/ai-decenter/redishttp/internal/contract"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// TestRestoreKnowsTheRedisVersion: the restore init container is told the
// version of the Redis that will load the backup, read from the image's tag,
// so that it refuses a backup a newer Redis made (internal/backup) instead of
// leaving a Redis that cannot load it crash-looping.
func TestRestoreKnowsTheRedisVersion(t *testing.T) {
	cases := map[string]struct {
		reason string
		spec   string
		want   string
	}{
		"Default": {
			reason: "The default redisVersion's image.",
			spec:   `{"memory": "256Mi", "restore": {"s3": ` + testS3 + `}}`,
			want:   defaultRedisVersion,
		},
		"RedisVersion": {
			reason: "spec.redisVersion names the image.",
			spec:   `{"memory": "256Mi", "redisVersion": "7.0", "restore": {"s3": ` + testS3 + `}}`,
			want:   "7.0",
		},
		"ImageWithVersion": {
			reason: "A tenant's image whose tag starts with a version.",
			spec:   `{"memory": "256Mi", "image": "registry.example.com/redis:7.0.15-bookworm", "restore": {"s3": ` + testS3 + `}}`,
			want:   "7.0.15",
		},
		"ImageWithoutVersion": {
			reason: "A tag naming no version: nothing to check against.",
			spec:   `{"memory": "256Mi", "image": "registry.example.com/redis:stable", "restore": {"s3": ` + testS3 + `}}`,
			want:   "",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithBackups(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}})
			sts := &appsv1.StatefulSet{}
			if !desiredAs(t, rsp, string(nameStatefulSet), sts) {
				t.Fatalf("%s\nno StatefulSet composed: %v", tc.reason, rsp.GetResults())
			}
			got := ""
			for _, c := range sts.Spec.Template.Spec.InitContainers {
				if c.Name != contract.RestoreContainer {
					continue
				}
				for _, e := range c.Env {
					if e.Name == "REDIS_VERSION" {
						got = e.Value
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nthe restore container's REDIS_VERSION: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
