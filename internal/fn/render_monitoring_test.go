package fn

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/function-sdk-go/logging"
)

// TestRenderMonitoring renders the namespaced example with monitoring (and
// its dashboard) through the real crossplane CLI and Crossplane core, with and
// without the Prometheus Operator's CRDs as required resources: core asks the
// function's requirements, looks the CRDs up by name and calls again, as in a
// cluster. With them the ServiceMonitor and PrometheusRule are composed and
// the XR's Monitoring condition is True; without, neither, and False.
func TestRenderMonitoring(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the crossplane CLI and Crossplane core")
	}
	addr := serve(t, NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword), WithGatewayImage(testGatewayImage)))
	ex := examples["NamespacedMode"]
	b, err := os.ReadFile(filepath.Join(repoRoot, ex.xr))
	if err != nil {
		t.Fatal(err)
	}
	xr := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &xr.Object); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(xr.Object, map[string]any{"enabled": true, "dashboard": true}, "spec", "monitoring"); err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(xr.Object)
	if err != nil {
		t.Fatal(err)
	}
	ex.xr = writeFile(t, "xr-monitoring.yaml", out)
	crds, err := filepath.Abs("testdata/render/prometheus-operator-crds.yaml")
	if err != nil {
		t.Fatal(err)
	}

	monitoring := []string{
		"dashboard-configmap ConfigMap team-a/cache-redis-dashboard",
		"gateway-metrics-service Service team-a/cache-http-metrics",
		"metrics-service Service team-a/cache-redis-metrics",
	}
	cases := map[string]struct {
		reason    string
		required  string
		composed  []string
		condition string
	}{
		"WithCRDs": {
			reason:    "Core finds both CRDs by name: the ServiceMonitor and PrometheusRule are composed.",
			required:  crds,
			composed:  append([]string{"prometheusrule PrometheusRule team-a/cache-redis", "servicemonitor ServiceMonitor team-a/cache-redis"}, monitoring...),
			condition: "True",
		},
		"WithoutCRDs": {
			reason:    "Core finds no CRD: nothing of the operator's is composed, the render succeeds, and the condition says why.",
			composed:  monitoring,
			condition: "False",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			args := []string{
				"render", ex.xr, ex.composition, "examples/function/functions.yaml",
				"--xrd=" + ex.xrd, "--include-full-xr",
				"--crossplane-binary=" + testenv.Tool(t, "crossplane-core"),
				"--function-annotations=" + annotationTarget + "=" + addr,
				"--timeout=" + renderTimeout.String(),
			}
			if tc.required != "" {
				args = append(args, "--required-resources="+tc.required)
			}
			got, err := crossplane(t, args...)
			if err != nil {
				t.Fatalf("%s\ncannot render: %v", tc.reason, err)
			}
			composed := describe(composedIn(t, got))
			for _, want := range tc.composed {
				if !slices.Contains(composed, want) {
					t.Errorf("%s\ncrossplane render: want %q composed, got %v", tc.reason, want, composed)
				}
			}
			for _, c := range composed {
				operator := strings.HasPrefix(c, string(nameServiceMonitor)+" ") || strings.HasPrefix(c, string(namePrometheusRule)+" ")
				if operator && !slices.Contains(tc.composed, c) {
					t.Errorf("%s\ncrossplane render: %q composed", tc.reason, c)
				}
			}
			var status string
			for _, u := range documents(t, got) {
				if u.GetKind() != "RedisHttpInstance" {
					continue
				}
				conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
				for _, c := range conds {
					if m, _ := c.(map[string]any); m["type"] == conditionMonitoring {
						status, _ = m["status"].(string)
					}
				}
			}
			if diff := cmp.Diff(tc.condition, status); diff != "" {
				t.Errorf("%s\ncrossplane render: the XR's Monitoring condition: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
