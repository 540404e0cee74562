package fn

import (
	"context"
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// FuzzRunFunction feeds arbitrary specs (any JSON a tenant could write, and
// more) to the function. Whatever the input, it must neither panic nor return
// a gRPC error: it composes, or it returns a Fatal result saying why not.
func FuzzRunFunction(f *testing.F) {
	for _, seed := range []string{
		`{"memory": "256Mi"}`,
		`{}`,
		`{"memory": 268435456, "cpu": {"request": 1, "limit": "2"}}`,
		`{"memory": "1e9", "storage": {"size": "1Ti", "storageClassName": "x", "reclaimPolicy": "Retain"}}`,
		`{"memory": "256Mi", "config": {"hz": "10", "timeout": "0\nx", "requirepass": "y"}}`,
		`{"memory": "256Mi", "networkPolicy": {"enabled": true, "podSelector": {"app": "web"}}}`,
		`{"memory": ["x"], "persistence": "yes"}`,
		`{"memory": "-1", "redisVersion": "latest", "image": "bad image"}`,
		`{"memory": "256Mi", "writeConnectionSecretToRef": {"name": "UPPER"}}`,
		`{"memory": 4294967296, "http": {"enabled": true, "replicas": 3, "ingress": {"host": "a.example.com", "tlsSecretName": "t", "annotations": {"x": "y"}}}}`,
		`{"memory": "1e999999999", "http": {"enabled": true, "resources": {"limits": {"memory": "1e9"}}}}`,
		`{"memory": "256Mi", "config": {"timeout": "+5", "hz": "0500", "notify-keyspace-events": ""}}`,
		`{"memory": "256Mi", "http": {"enabled": true, "replicas": 4294967297}, "persistence": {"rdb": "yes"}}`,
	} {
		f.Add(seed, "team-a", "cache")
	}
	fn := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(func() (string, error) { return testPassword, nil }), WithGatewayImage(testGatewayImage), WithCoordinatorImage(testCoordinatorImage))
	f.Fuzz(func(t *testing.T, spec, namespace, name string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(spec), &m); err != nil {
			return // Not an object: the API server would never send it.
		}
		s, err := structpb.NewStruct(map[string]any{
			"apiVersion": "redishttp.io/v1alpha1",
			"kind":       "RedisHttpInstance",
			"metadata":   map[string]any{"name": name, "namespace": namespace},
			"spec":       m,
		})
		if err != nil {
			return // Not representable as a protobuf Struct (e.g. invalid UTF-8).
		}
		rsp, err := fn.RunFunction(context.Background(), &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: &fnv1.Resource{Resource: s}}})
		if err != nil {
			t.Fatalf("RunFunction(%s): gRPC error for tenant input: %v", spec, err)
		}
		if _, err := proto.Marshal(rsp); err != nil {
			t.Fatalf("RunFunction(%s): the response cannot be sent: %v", spec, err)
		}
		if m := rsp.GetResults(); len(m) > 0 && len(m[0].GetMessage()) > 2*maxSpecMessage {
			t.Fatalf("RunFunction(%s): a %d-byte message", spec, len(m[0].GetMessage()))
		}
		fatal := false
		for _, r := range rsp.GetResults() {
			if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
				fatal = true
				if r.GetMessage() == "" {
					t.Fatalf("RunFunction(%s): Fatal result without a message", spec)
				}
			}
		}
		status, _ := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)
		phase := status["phase"]
		switch {
		case phase == v1alpha1.PhaseInvalid && (len(rsp.GetDesired().GetResources()) > 0 || rsp.GetDesired().GetComposite().GetReady() != fnv1.Ready_READY_FALSE):
			t.Fatalf("RunFunction(%s): a refused spec, but %d composed resources and ready %v", spec, len(rsp.GetDesired().GetResources()), rsp.GetDesired().GetComposite().GetReady())
		case !fatal && phase != v1alpha1.PhaseInvalid && len(rsp.GetDesired().GetResources()) < 5:
			t.Fatalf("RunFunction(%s): neither refused nor Fatal, but only %d composed resources", spec, len(rsp.GetDesired().GetResources()))
		}
	})
}
