package fn

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// running returns the XR of a running instance: spec as the tenant now has
// it, status as the function last wrote it for accepted (a valid spec), and
// the composed resources of that composition as observed.
func running(t *testing.T, accepted, spec string) *fnv1.RunFunctionRequest {
	t.Helper()
	first := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(accepted)}})
	xr := namespacedXR(spec)
	xr.Resource.Fields["status"] = first.GetDesired().GetComposite().GetResource().GetFields()["status"]
	return &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: xr, Resources: first.GetDesired().GetResources()}}
}

// TestRunFunctionRefusedChangeKeepsWhatRuns proves a refused change to a
// running instance leaves what runs as it was, composed from status.applied
// (not frozen by a Fatal result), and says so where the tenant looks: PHASE
// Invalid, a Warning event and Valid=False on the claim and the XR.
func TestRunFunctionRefusedChangeKeepsWhatRuns(t *testing.T) {
	const msg = `invalid RedisHttpInstance "team-a/cache": spec.memory: Invalid value: "16Mi": must be at least 32Mi`
	req := running(t, `{"memory": "256Mi"}`, `{"memory": "16Mi"}`)
	rsp := run(t, req)
	before := run(t, running(t, `{"memory": "256Mi"}`, `{"memory": "256Mi"}`))

	tgt := fnv1.Target_TARGET_COMPOSITE_AND_CLAIM
	msgp := msg
	wantResults := []*fnv1.Result{{Severity: fnv1.Severity_SEVERITY_WARNING, Message: msg, Reason: new(reasonInvalidSpec), Target: &tgt}}
	if diff := cmp.Diff(wantResults, rsp.GetResults(), protocmp.Transform()); diff != "" {
		t.Errorf("RunFunction(...): -want results, +got:\n%s", diff)
	}
	wantConditions := []*fnv1.Condition{{Type: conditionValid, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: reasonInvalidSpec, Message: &msgp, Target: &tgt}}
	if diff := cmp.Diff(wantConditions, rsp.GetConditions(), protocmp.Transform()); diff != "" {
		t.Errorf("RunFunction(...): -want conditions, +got:\n%s", diff)
	}
	if diff := cmp.Diff(before.GetDesired().GetResources(), rsp.GetDesired().GetResources(), protocmp.Transform()); diff != "" {
		t.Errorf("RunFunction(...): the composed resources should be those of the accepted spec: -accepted, +got:\n%s", diff)
	}
	status := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)
	if diff := cmp.Diff("Invalid", status["phase"]); diff != "" {
		t.Errorf("RunFunction(...): -want phase, +got:\n%s", diff)
	}
	applied, _ := status["applied"].(map[string]any)
	if diff := cmp.Diff("256Mi", applied["memory"]); diff != "" {
		t.Errorf("RunFunction(...): status.applied.memory should stay what runs: -want, +got:\n%s", diff)
	}
}

func TestRunFunctionRefusedChangeWithoutApplied(t *testing.T) {
	const msg = `invalid RedisHttpInstance "team-a/cache": spec.memory: Invalid value: "16Mi": must be at least 32Mi`
	cases := map[string]struct {
		reason string
		req    func(t *testing.T) *fnv1.RunFunctionRequest
		f      *Function
	}{
		"NoAppliedSpec": {
			reason: "An instance composed before status.applied existed has no accepted spec to compose: nothing may change (Fatal).",
			req: func(t *testing.T) *fnv1.RunFunctionRequest {
				req := running(t, `{"memory": "256Mi"}`, `{"memory": "16Mi"}`)
				delete(req.GetObserved().GetComposite().GetResource().GetFields()["status"].GetStructValue().GetFields(), "applied")
				return req
			},
		},
		"AppliedSpecNowRefused": {
			reason: "An applied spec the platform now refuses (HTTP without a gateway image) cannot be composed either: nothing may change (Fatal).",
			req: func(t *testing.T) *fnv1.RunFunctionRequest {
				return running(t, `{"memory": "256Mi", "http": {"enabled": true}}`, `{"memory": "16Mi", "http": {"enabled": true}}`)
			},
			f: NewFunction(logging.NewNopLogger(), WithPasswordGenerator(func() (string, error) { return testPassword, nil })),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := tc.f
			if f == nil {
				f = NewFunction(logging.NewNopLogger(), WithPasswordGenerator(func() (string, error) { return testPassword, nil }), WithGatewayImage(testGatewayImage))
			}
			rsp, err := f.RunFunction(context.Background(), tc.req(t))
			if err != nil {
				t.Fatal(err)
			}
			want := fatal(msg)
			if name == "AppliedSpecNowRefused" {
				want = fatal(`invalid RedisHttpInstance "team-a/cache": spec.http.enabled: Forbidden: this platform runs no HTTP gateway (the function has no --gateway-image): ask the platform team, or leave it off; spec.memory: Invalid value: "16Mi": must be at least 32Mi`)
			}
			if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want rsp, +got rsp:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestAsMapHasNoEmptyObject(t *testing.T) {
	cases := map[string]struct {
		reason string
		spec   map[string]any
	}{
		"HTTPOff": {
			reason: "A spec with HTTP off gets a defaulted, empty ingress: status.applied must not hold it as an empty object, which server-side apply turned into a null the schema refuses.",
			spec:   map[string]any{"memory": "256Mi", "http": map[string]any{"enabled": false}},
		},
		"Minimal": {
			reason: "A spec of memory only is defaulted without any empty object.",
			spec:   map[string]any{"memory": "256Mi"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, errs := decodeSpec(tc.spec)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			applyDefaults(s)
			m, err := asMap(s)
			if err != nil {
				t.Fatal(err)
			}
			var walk func(path string, m map[string]any)
			walk = func(path string, m map[string]any) {
				for k, v := range m {
					if c, ok := v.(map[string]any); ok {
						if len(c) == 0 {
							t.Errorf("%s\nasMap(...): %s%s is an empty object", tc.reason, path, k)
						}
						walk(path+k+".", c)
					}
				}
			}
			walk("", m)
		})
	}
}
