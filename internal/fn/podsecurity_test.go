package fn

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

func TestPodPassesRestrictedPodSecurity(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatalf("cannot create the Pod Security evaluator: %v", err)
	}
	cases := map[string]struct {
		reason string
		xr     *fnv1.Resource
	}{
		"ClaimModeDefaults": {
			reason: "The pod composed for a claim with defaults should pass PSS restricted.",
			xr:     claimXR(`{"memory": "256Mi"}`),
		},
		"NamespacedModeEverything": {
			reason: "The pod composed with every option set should pass PSS restricted.",
			xr: namespacedXR(`{"memory": "1Gi", "image": "mirror.example.com/redis:7.2-alpine", "cpu": {"request": "1", "limit": "2"},
				"storage": {"size": "10Gi", "storageClassName": "fast", "reclaimPolicy": "Retain"}, "persistence": {"appendOnly": true},
				"networkPolicy": {"enabled": true}, "podDisruptionBudget": {"enabled": true}}`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp, err := NewFunction(logging.NewNopLogger()).RunFunction(context.Background(), &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: tc.xr}})
			if err != nil {
				t.Fatalf("RunFunction(...): %v", err)
			}
			sts := &appsv1.StatefulSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(rsp.GetDesired().GetResources()["statefulset"].GetResource().AsMap(), sts); err != nil {
				t.Fatalf("cannot convert the composed StatefulSet: %v", err)
			}
			var failed []string
			for _, r := range eval.EvaluatePod(psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()},
				&sts.Spec.Template.ObjectMeta, &sts.Spec.Template.Spec) {
				if !r.Allowed {
					failed = append(failed, r.ForbiddenReason+": "+r.ForbiddenDetail)
				}
			}
			if diff := cmp.Diff("", strings.Join(failed, "; ")); diff != "" {
				t.Errorf("%s\nEvaluatePod(restricted): -want, +got violations:\n%s", tc.reason, diff)
			}
		})
	}
}
