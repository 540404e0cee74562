package fn

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// crashingPod is pod cache-redis-0 with its redis container in a crash loop,
// the kubelet saying msg (which changes from one restart to the next).
func crashingPod(msg string) map[string]*fnv1.Resources {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "cache-redis-0", "namespace": "team-a"},
		"status": map[string]any{"containerStatuses": []any{map[string]any{
			"name": "redis", "ready": false,
			"state": map[string]any{"waiting": map[string]any{"reason": "CrashLoopBackOff", "message": msg}},
		}}},
	})
	return map[string]*fnv1.Resources{requirementPod: {Items: []*fnv1.Resource{{Resource: s}}}}
}

// claimXRWithPodsCondition is the claim's XR carrying condition
// RedisPodsHealthy as an earlier reconcile left it.
func claimXRWithPodsCondition(status, message string) *fnv1.Resource {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "redishttp.io/v1alpha1", "kind": "XRedisHttpInstance",
		"metadata": map[string]any{"name": "cache-x7k2p", "labels": map[string]any{"crossplane.io/claim-name": "cache", "crossplane.io/claim-namespace": "team-a"}},
		"spec":     map[string]any{"memory": "256Mi"},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": conditionPodsHealthy, "status": status, "reason": reasonPodFailing, "message": message,
			"lastTransitionTime": "2026-12-05T00:00:00Z",
		}}},
	})
	return &fnv1.Resource{Resource: s}
}

// TestRunFunctionWarnsOncePerPodFailure: a failing pod is one Warning event
// per distinct failure, not one per reconcile. The condition RedisPodsHealthy
// remembers the failure reported (its summary stays the same while the
// kubelet's words change at every restart), and turns True once the pods
// recover.
func TestRunFunctionWarnsOncePerPodFailure(t *testing.T) {
	const crashing = `Redis pod team-a/cache-redis-0 is failing: container "redis" is CrashLoopBackOff`
	type want struct {
		warnings  []string
		condition *fnv1.Condition
	}
	failing := func(msg string) *fnv1.Condition {
		return &fnv1.Condition{Type: conditionPodsHealthy, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: reasonPodFailing, Message: &msg}
	}
	recovered := "no Redis pod is failing any more"
	cases := map[string]struct {
		reason   string
		xr       *fnv1.Resource
		required map[string]*fnv1.Resources
		want     want
	}{
		"FirstFailure": {
			reason:   "A pod that starts failing is a Warning with the kubelet's words, and the condition says which pod and why.",
			xr:       claimXR(`{"memory": "256Mi"}`),
			required: crashingPod("back-off 10s restarting failed container=redis"),
			want: want{
				warnings:  []string{crashing + ": back-off 10s restarting failed container=redis"},
				condition: failing(crashing),
			},
		},
		"SameFailureLater": {
			reason:   "The same failure at a later reconcile, the kubelet now saying something else, is no new Warning.",
			xr:       claimXRWithPodsCondition("False", crashing),
			required: crashingPod("back-off 40s restarting failed container=redis"),
			want:     want{condition: failing(crashing)},
		},
		"AnotherFailure": {
			reason:   "A different failure is a new Warning.",
			xr:       claimXRWithPodsCondition("False", `Redis pod team-a/cache-redis-0 is failing: container "redis" is ImagePullBackOff`),
			required: crashingPod("back-off 10s restarting failed container=redis"),
			want: want{
				warnings:  []string{crashing + ": back-off 10s restarting failed container=redis"},
				condition: failing(crashing),
			},
		},
		"Recovered": {
			reason: "Once no pod fails the condition turns True, without a Warning.",
			xr:     claimXRWithPodsCondition("False", crashing),
			want: want{condition: &fnv1.Condition{
				Type: conditionPodsHealthy, Status: fnv1.Status_STATUS_CONDITION_TRUE, Reason: reasonPodsRecovered, Message: &recovered,
			}},
		},
		"NeverFailed": {
			reason: "An instance whose pods never failed carries no such condition.",
			xr:     claimXR(`{"memory": "256Mi"}`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: tc.xr}, RequiredResources: tc.required})
			var got want
			for _, r := range rsp.GetResults() {
				if r.GetSeverity() == fnv1.Severity_SEVERITY_WARNING {
					got.warnings = append(got.warnings, r.GetMessage())
				}
			}
			for _, c := range rsp.GetConditions() {
				if c.GetType() == conditionPodsHealthy {
					got.condition = &fnv1.Condition{Type: c.GetType(), Status: c.GetStatus(), Reason: c.GetReason(), Message: c.Message}
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{}), cmp.Comparer(func(a, b *fnv1.Condition) bool {
				return a.GetType() == b.GetType() && a.GetStatus() == b.GetStatus() && a.GetReason() == b.GetReason() && a.GetMessage() == b.GetMessage()
			})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
