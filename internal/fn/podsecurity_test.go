package fn

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

func TestPodPassesRestrictedPodSecurity(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatalf("cannot create the Pod Security evaluator: %v", err)
	}
	cases := map[string]struct {
		reason  string
		xr      *fnv1.Resource
		gateway bool
	}{
		"ClaimModeDefaults": {
			reason: "The pod composed for a claim with defaults should pass PSS restricted.",
			xr:     claimXR(`{"memory": "256Mi"}`),
		},
		"NamespacedModeEverything": {
			reason:  "The pods composed with every option set, the gateway's too, should pass PSS restricted.",
			gateway: true,
			xr: namespacedXR(`{"memory": "1Gi", "image": "mirror.example.com/redis:7.2-alpine", "cpu": {"request": "1", "limit": "2"},
				"storage": {"size": "10Gi", "storageClassName": "fast", "reclaimPolicy": "Retain"}, "persistence": {"appendOnly": true},
				"networkPolicy": {"enabled": true}, "podDisruptionBudget": {"enabled": true},
				"http": {"enabled": true, "replicas": 2, "ingress": {"host": "c.example.com"}}}`),
		},
		"Replicas": {
			reason: "The pods of an instance with replicas (Redis, Sentinel, the coordinator with its token) should pass PSS restricted.",
			xr:     namespacedXR(`{"memory": "256Mi", "replicas": 5}`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: tc.xr}})
			templates := map[string]*corev1.PodTemplateSpec{}
			sts := &appsv1.StatefulSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(rsp.GetDesired().GetResources()["statefulset"].GetResource().AsMap(), sts); err != nil {
				t.Fatalf("cannot convert the composed StatefulSet: %v", err)
			}
			templates["statefulset"] = &sts.Spec.Template
			if gw, ok := rsp.GetDesired().GetResources()["gateway-deployment"]; ok {
				d := &appsv1.Deployment{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(gw.GetResource().AsMap(), d); err != nil {
					t.Fatalf("cannot convert the composed Deployment: %v", err)
				}
				templates["gateway-deployment"] = &d.Spec.Template
			}
			var failed []string
			for name, tpl := range templates {
				for _, r := range eval.EvaluatePod(psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}, &tpl.ObjectMeta, &tpl.Spec) {
					if !r.Allowed {
						failed = append(failed, name+": "+r.ForbiddenReason+": "+r.ForbiddenDetail)
					}
				}
			}
			if tc.gateway && templates["gateway-deployment"] == nil {
				t.Errorf("%s\nRunFunction(...): no gateway Deployment composed", tc.reason)
			}
			if diff := cmp.Diff("", strings.Join(failed, "; ")); diff != "" {
				t.Errorf("%s\nEvaluatePod(restricted): -want, +got violations:\n%s", tc.reason, diff)
			}
		})
	}
}
