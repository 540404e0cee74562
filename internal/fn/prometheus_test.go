package fn

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ai-decenter/redishttp/internal/contract"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/resource"
)

// crd is a CustomResourceDefinition as Crossplane sends a required resource:
// the whole object, here with the versions the function looks at.
func crd(name string, served bool) *fnv1.Resource {
	s := "false"
	if served {
		s = "true"
	}
	return &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind": "CustomResourceDefinition",
		"metadata": {"name": "` + name + `"},
		"spec": {"group": "monitoring.coreos.com", "scope": "Namespaced", "versions": [{"name": "v1", "served": ` + s + `, "storage": true}]},
		"status": {"conditions": [{"type": "Established", "status": "True"}]}}`)}
}

// required are the requirements answered as Crossplane answers them: each
// key present, with the objects found (none when there is no such CRD).
func required(serviceMonitors, prometheusRules []*fnv1.Resource) map[string]*fnv1.Resources {
	return map[string]*fnv1.Resources{
		requirementServiceMonitorCRD: {Items: serviceMonitors},
		requirementPrometheusRuleCRD: {Items: prometheusRules},
	}
}

func monitoringCondition(rsp *fnv1.RunFunctionResponse) *fnv1.Condition {
	for _, c := range rsp.GetConditions() {
		if c.GetType() == conditionMonitoring {
			return c
		}
	}
	return nil
}

// TestRunFunctionPrometheusOperator checks that a ServiceMonitor and a
// PrometheusRule are composed only when Crossplane found both of the
// Prometheus Operator's CRDs, that without them the tenant is told why in
// the Monitoring condition and everything else is still composed, and that
// the function asks for the CRDs only for an instance with monitoring.
func TestRunFunctionPrometheusOperator(t *testing.T) {
	tgt := fnv1.Target_TARGET_COMPOSITE_AND_CLAIM
	both := required([]*fnv1.Resource{crd(crdServiceMonitors, true)}, []*fnv1.Resource{crd(crdPrometheusRules, true)})
	type want struct {
		composed  map[string]string
		absent    []string
		condition *fnv1.Condition
		requires  bool
	}
	cases := map[string]struct {
		reason   string
		spec     string
		required map[string]*fnv1.Resources
		want     want
	}{
		"CRDsInstalled": {
			reason:   "With both CRDs in the cluster, the instance gets a ServiceMonitor and a PrometheusRule, and Monitoring is True.",
			spec:     `{"memory": "256Mi", "monitoring": {"enabled": true}}`,
			required: both,
			want: want{
				composed: map[string]string{
					"servicemonitor":  "ServiceMonitor team-a/cache-redis",
					"prometheusrule":  "PrometheusRule team-a/cache-redis",
					"metrics-service": "Service team-a/cache-redis-metrics",
				},
				absent: []string{"gateway-metrics-service"},
				condition: &fnv1.Condition{Type: conditionMonitoring, Status: fnv1.Status_STATUS_CONDITION_TRUE, Reason: "PrometheusOperator",
					Message: new("ServiceMonitor and PrometheusRule cache-redis are composed"), Target: &tgt},
				requires: true,
			},
		},
		"CRDsInstalledWithGateway": {
			reason:   "With HTTP on, the gateway's /metrics gets its own Service (which the ServiceMonitor selects) and Prometheus is admitted to it.",
			spec:     `{"memory": "256Mi", "monitoring": {"enabled": true}, "http": {"enabled": true}, "networkPolicy": {"enabled": true}}`,
			required: both,
			want: want{
				composed: map[string]string{
					"servicemonitor":                "ServiceMonitor team-a/cache-redis",
					"prometheusrule":                "PrometheusRule team-a/cache-redis",
					"gateway-metrics-service":       "Service team-a/cache-http-metrics",
					"gateway-metrics-networkpolicy": "NetworkPolicy team-a/cache-http-metrics",
				},
				condition: &fnv1.Condition{Type: conditionMonitoring, Status: fnv1.Status_STATUS_CONDITION_TRUE, Reason: "PrometheusOperator",
					Message: new("ServiceMonitor and PrometheusRule cache-redis are composed"), Target: &tgt},
				requires: true,
			},
		},
		"NoCRDs": {
			reason:   "Without the CRDs nothing of the operator's is composed (it would fail the composition), the exporter still is, and Monitoring is False saying why.",
			spec:     `{"memory": "256Mi", "monitoring": {"enabled": true}}`,
			required: required(nil, nil),
			want: want{
				composed: map[string]string{"metrics-service": "Service team-a/cache-redis-metrics"},
				absent:   []string{"servicemonitor", "prometheusrule"},
				condition: &fnv1.Condition{Type: conditionMonitoring, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: "NoPrometheusOperator",
					Message: new("the cluster has no Prometheus Operator CRDs (servicemonitors.monitoring.coreos.com, prometheusrules.monitoring.coreos.com serving v1): " +
						"no ServiceMonitor or PrometheusRule is composed; the exporter serves on Service cache-redis-metrics port metrics for a Prometheus configured otherwise"),
					Target: &tgt},
				requires: true,
			},
		},
		"OnlyServiceMonitorCRD": {
			reason:   "With one CRD of the two, neither object is composed: a half-monitored instance would look monitored.",
			spec:     `{"memory": "256Mi", "monitoring": {"enabled": true}}`,
			required: required([]*fnv1.Resource{crd(crdServiceMonitors, true)}, nil),
			want: want{
				absent: []string{"servicemonitor", "prometheusrule"},
				condition: &fnv1.Condition{Type: conditionMonitoring, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: "NoPrometheusOperator",
					Message: new("the cluster has no Prometheus Operator CRDs (servicemonitors.monitoring.coreos.com, prometheusrules.monitoring.coreos.com serving v1): " +
						"no ServiceMonitor or PrometheusRule is composed; the exporter serves on Service cache-redis-metrics port metrics for a Prometheus configured otherwise"),
					Target: &tgt},
				requires: true,
			},
		},
		"CRDsNotServingV1": {
			reason:   "CRDs that do not serve v1 cannot take the v1 objects the function writes.",
			spec:     `{"memory": "256Mi", "monitoring": {"enabled": true}}`,
			required: required([]*fnv1.Resource{crd(crdServiceMonitors, false)}, []*fnv1.Resource{crd(crdPrometheusRules, true)}),
			want: want{
				absent: []string{"servicemonitor", "prometheusrule"},
				condition: &fnv1.Condition{Type: conditionMonitoring, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: "NoPrometheusOperator",
					Message: new("the cluster has no Prometheus Operator CRDs (servicemonitors.monitoring.coreos.com, prometheusrules.monitoring.coreos.com serving v1): " +
						"no ServiceMonitor or PrometheusRule is composed; the exporter serves on Service cache-redis-metrics port metrics for a Prometheus configured otherwise"),
					Target: &tgt},
				requires: true,
			},
		},
		"NotYetAnswered": {
			reason: "On the first call Crossplane has not looked the CRDs up yet: nothing is composed and nothing is said until it has.",
			spec:   `{"memory": "256Mi", "monitoring": {"enabled": true}}`,
			want: want{
				composed: map[string]string{"metrics-service": "Service team-a/cache-redis-metrics"},
				absent:   []string{"servicemonitor", "prometheusrule"},
				requires: true,
			},
		},
		"MonitoringOff": {
			reason:   "Without monitoring the function neither asks for the CRDs nor composes anything for Prometheus, even when they exist.",
			spec:     `{"memory": "256Mi"}`,
			required: both,
			want:     want{absent: []string{"servicemonitor", "prometheusrule", "metrics-service"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}, RequiredResources: tc.required})
			if r := rsp.GetResults(); len(r) > 0 && r[0].GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
				t.Fatalf("%s\nRunFunction(...): fatal result %q", tc.reason, r[0].GetMessage())
			}
			got := desiredKinds(rsp)
			for name, want := range tc.want.composed {
				if got[name] != want {
					t.Errorf("%s\nRunFunction(...): desired %s: want %s, got %q", tc.reason, name, want, got[name])
				}
			}
			for _, name := range tc.want.absent {
				if _, ok := got[name]; ok {
					t.Errorf("%s\nRunFunction(...): desired %s, want none", tc.reason, name)
				}
			}
			if diff := cmp.Diff(tc.want.condition, monitoringCondition(rsp), protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): Monitoring condition: -want, +got:\n%s", tc.reason, diff)
			}
			sels := rsp.GetRequirements().GetResources()
			for key, name := range map[string]string{requirementServiceMonitorCRD: crdServiceMonitors, requirementPrometheusRuleCRD: crdPrometheusRules} {
				var want *fnv1.ResourceSelector
				if tc.want.requires {
					want = &fnv1.ResourceSelector{ApiVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition", Match: &fnv1.ResourceSelector_MatchName{MatchName: name}}
				}
				if diff := cmp.Diff(want, sels[key], protocmp.Transform()); diff != "" {
					t.Errorf("%s\nRunFunction(...): requirement %s: -want, +got:\n%s", tc.reason, key, diff)
				}
			}
		})
	}
}

// TestServiceMonitor checks the ServiceMonitor selects exactly the
// instance's metrics Services (the exporter's and the gateway's) in its own
// namespace, with the labels the platform's Prometheus selects by, and that
// the PrometheusRule holds the instance's alerts.
func TestServiceMonitor(t *testing.T) {
	in := &instance{Name: "cache", Namespace: "team-a"}
	prom := PrometheusPeer{SelectLabels: map[string]string{"release": "kube-prometheus-stack"}}
	sm := serviceMonitor(in, prom)
	want := map[string]any{
		"selector":          map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/instance": "cache", "app.kubernetes.io/managed-by": "redishttp", "app.kubernetes.io/component": "metrics"}},
		"namespaceSelector": map[string]any{"matchNames": []any{"team-a"}},
		"endpoints":         []any{map[string]any{"port": "metrics", "path": "/metrics", "interval": "30s"}},
	}
	if diff := cmp.Diff(want, sm.Object["spec"]); diff != "" {
		t.Errorf("serviceMonitor(...): spec: -want, +got:\n%s", diff)
	}
	if sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("serviceMonitor(...): labels %v, want the platform's select labels too", sm.GetLabels())
	}
	// Both metrics Services carry every label the ServiceMonitor selects.
	for _, l := range []map[string]string{metricsService(in).Labels, gatewayMetricsService(in).Labels} {
		for k, v := range metricsSelector(in) {
			if l[k] != v {
				t.Errorf("a metrics Service labelled %v is not selected by %s=%s", l, k, v)
			}
		}
	}
	// The other Services of the instance are not.
	for _, l := range []map[string]string{clientService(in, false).Labels, gatewayService(in).Labels} {
		if l[contract.LabelComponent] == "metrics" {
			t.Errorf("Service labelled %v would be scraped", l)
		}
	}
	rule, err := prometheusRule(in, prom, alerting{})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := alertGroups(in, alerting{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"groups": groups}, rule.Object["spec"]); diff != "" {
		t.Errorf("prometheusRule(...): spec: -want, +got:\n%s", diff)
	}
}

// TestRunFunctionPrometheusRuleBackupGroup checks the PrometheusRule watches
// backups only for an instance whose backups run on a schedule: an
// on-demand CronJob (no schedule) is never stale.
func TestRunFunctionPrometheusRuleBackupGroup(t *testing.T) {
	both := required([]*fnv1.Resource{crd(crdServiceMonitors, true)}, []*fnv1.Resource{crd(crdPrometheusRules, true)})
	cases := map[string]struct {
		reason string
		backup string
		want   []any
	}{
		"Scheduled": {
			reason: "Scheduled backups get the stale-backup alert.",
			backup: `{"schedule": "0 */6 * * *", "s3": ` + testS3 + `}`,
			want:   []any{"redishttp-redis", alertGroupBackup},
		},
		"OnDemand": {
			reason: "Backups without a schedule get no stale-backup alert.",
			backup: `{"s3": ` + testS3 + `}`,
			want:   []any{"redishttp-redis"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithBackups(t, &fnv1.RunFunctionRequest{
				Observed:          &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "monitoring": {"enabled": true}, "backup": ` + tc.backup + `}`)},
				RequiredResources: both,
			})
			r, ok := rsp.GetDesired().GetResources()[string(namePrometheusRule)]
			if !ok {
				t.Fatalf("%s\nRunFunction(...): no PrometheusRule; results %v", tc.reason, rsp.GetResults())
			}
			groups := r.GetResource().AsMap()["spec"].(map[string]any)["groups"].([]any)
			var got []any
			for _, g := range groups {
				got = append(got, g.(map[string]any)["name"])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nRunFunction(...): PrometheusRule groups: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestRunFunctionMonitoringOff checks that turning monitoring off replaces
// the Monitoring condition the instance had (Crossplane would keep a stale
// True), and that an instance that never had monitoring gets none.
func TestRunFunctionMonitoringOff(t *testing.T) {
	tgt := fnv1.Target_TARGET_COMPOSITE_AND_CLAIM
	withCondition := &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "redishttp.io/v1alpha1", "kind": "RedisHttpInstance",
		"metadata": {"name": "cache", "namespace": "team-a"},
		"spec": {"memory": "256Mi"},
		"status": {"conditions": [{"type": "Monitoring", "status": "True", "reason": "PrometheusOperator", "lastTransitionTime": "2026-12-04T00:00:00Z"}]}}`)}
	cases := map[string]struct {
		reason string
		xr     *fnv1.Resource
		want   *fnv1.Condition
	}{
		"WasOn": {
			reason: "An instance whose monitoring was on is told it is off now.",
			xr:     withCondition,
			want: &fnv1.Condition{Type: conditionMonitoring, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: "Disabled",
				Message: new("spec.monitoring.enabled is false: no exporter, ServiceMonitor or PrometheusRule is composed"), Target: &tgt},
		},
		"NeverOn": {
			reason: "An instance that never had monitoring gets no Monitoring condition.",
			xr:     namespacedXR(`{"memory": "256Mi"}`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: tc.xr}})
			if diff := cmp.Diff(tc.want, monitoringCondition(rsp), protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): Monitoring condition: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
