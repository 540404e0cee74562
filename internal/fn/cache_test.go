package fn

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/resource"
)

// xrNamed is a namespaced XR with the given name and spec.
func xrNamed(name, spec string) *fnv1.RunFunctionRequest {
	return &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "redishttp.io/v1alpha1", "kind": "RedisHttpInstance",
		"metadata": {"name": "` + name + `", "namespace": "team-a"}, "spec": ` + spec + `}`)}}}
}

// TestRunFunctionRepeatedRequest checks the response cache by what composing
// does: a new instance gets a new password, so every composition calls the
// password generator once, and a response served from the cache does not.
func TestRunFunctionRepeatedRequest(t *testing.T) {
	type call struct {
		req      *fnv1.RunFunctionRequest
		composes bool
	}
	a, b := `{"memory": "256Mi"}`, `{"memory": "512Mi"}`
	large := xrNamed("one", a)
	large.Observed.Composite.Resource.Fields["metadata"].GetStructValue().Fields["annotations"] = structpb.NewStructValue(&structpb.Struct{
		Fields: map[string]*structpb.Value{"note": structpb.NewStringValue(strings.Repeat("x", 300<<10))},
	})
	cases := map[string]struct {
		reason string
		calls  []call
	}{
		"SameRequest": {
			reason: "The same request again should get the same response without composing.",
			calls:  []call{{xrNamed("one", a), true}, {xrNamed("one", a), false}, {xrNamed("one", a), false}},
		},
		"ChangedSpec": {
			reason: "A changed spec should be composed, and the spec before it composed again when it comes back: one request per composite is remembered.",
			calls:  []call{{xrNamed("one", a), true}, {xrNamed("one", b), true}, {xrNamed("one", a), true}},
		},
		"TwoComposites": {
			reason: "Two composites should each keep their own response, whatever the order of their calls.",
			calls:  []call{{xrNamed("one", a), true}, {xrNamed("two", a), true}, {xrNamed("one", a), false}, {xrNamed("two", a), false}},
		},
		"LargeRequest": {
			reason: "A request larger than the cache keeps (here by a 300 KB annotation on the XR) should be composed every time, never remembered.",
			calls:  []call{{large, true}, {large, true}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			composed := 0
			f := NewFunction(logging.NewNopLogger(), WithGatewayImage(testGatewayImage), WithPasswordGenerator(func() (string, error) {
				composed++
				return strings.Repeat("p", 39) + string(rune('a'+composed)), nil
			}))
			for i, c := range tc.calls {
				before := composed
				rsp, err := f.RunFunction(context.Background(), c.req)
				if err != nil {
					t.Fatalf("%s\nRunFunction(...) call %d: %v", tc.reason, i, err)
				}
				if got := composed > before; got != c.composes {
					t.Errorf("%s\nRunFunction(...) call %d: composed %t, want %t", tc.reason, i, got, c.composes)
				}
				// Whether composed or cached, the response is the one a
				// function that never saw a request before gives.
				fresh := NewFunction(logging.NewNopLogger(), WithGatewayImage(testGatewayImage), WithPasswordGenerator(func() (string, error) {
					return passwordIn(rsp), nil
				}))
				want, err := fresh.RunFunction(context.Background(), c.req)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
					t.Errorf("%s\nRunFunction(...) call %d: -want, +got:\n%s", tc.reason, i, diff)
				}
			}
		})
	}
}

// passwordIn is the password of the auth Secret rsp composes.
func passwordIn(rsp *fnv1.RunFunctionResponse) string {
	s := rsp.GetDesired().GetResources()[string(nameAuthSecret)].GetResource().GetFields()
	b, _ := base64.StdEncoding.DecodeString(s["data"].GetStructValue().GetFields()[contract.AuthPasswordKey].GetStringValue())
	return string(b)
}
