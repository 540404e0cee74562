package fn

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ai-decenter/redishttp/internal/contract"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/response"
)

// The Prometheus Operator's kinds the function composes when the cluster
// has their CRDs.
const (
	monitoringAPIVersion = "monitoring.coreos.com/v1"
	kindServiceMonitor   = "ServiceMonitor"
	kindPrometheusRule   = "PrometheusRule"
)

// Names of the Prometheus Operator's CRDs, which the function requires
// (asks Crossplane for) by name, and its requirement keys.
const (
	crdServiceMonitors = "servicemonitors.monitoring.coreos.com"
	crdPrometheusRules = "prometheusrules.monitoring.coreos.com"

	requirementServiceMonitorCRD = "servicemonitor-crd"
	requirementPrometheusRuleCRD = "prometheusrule-crd"
)

const (
	nameServiceMonitor              resource.Name = "servicemonitor"
	namePrometheusRule              resource.Name = "prometheusrule"
	nameGatewayMetricsService       resource.Name = "gateway-metrics-service"
	nameGatewayMetricsNetworkPolicy resource.Name = "gateway-metrics-networkpolicy"
)

// conditionMonitoring tells a tenant with spec.monitoring.enabled what
// Prometheus gets: True when a ServiceMonitor and a PrometheusRule are
// composed, False with the reason when they cannot be.
const conditionMonitoring = "Monitoring"

// scrapeInterval is how often the ServiceMonitor has Prometheus scrape.
const scrapeInterval = "30s"

// requirePrometheusCRDs asks Crossplane for the Prometheus Operator's CRDs,
// cluster-scoped, by name: an absent one comes back as no object, never an
// error.
func requirePrometheusCRDs(rsp *fnv1.RunFunctionResponse) {
	for key, name := range map[string]string{requirementServiceMonitorCRD: crdServiceMonitors, requirementPrometheusRuleCRD: crdPrometheusRules} {
		require(rsp, key, &fnv1.ResourceSelector{
			ApiVersion: "apiextensions.k8s.io/v1",
			Kind:       "CustomResourceDefinition",
			Match:      &fnv1.ResourceSelector_MatchName{MatchName: name},
		})
	}
}

// prometheusOperator says whether Crossplane sent both of the Prometheus
// Operator's CRDs serving v1 (ok), and if not whether it has answered the
// requirements yet (known): until it has, nothing is said to the tenant.
func prometheusOperator(req *fnv1.RunFunctionRequest) (ok, known bool) {
	ok, known = true, true
	for _, key := range []string{requirementServiceMonitorCRD, requirementPrometheusRuleCRD} {
		crds, resolved, err := request.GetRequiredResource(req, key)
		if !resolved {
			known = false
		}
		if err != nil || !slices.ContainsFunc(crds, servesV1) {
			ok = false
		}
	}
	return ok, known
}

// servesV1 says whether a CRD serves monitoring.coreos.com/v1.
func servesV1(crd resource.Required) bool {
	versions, _, _ := unstructured.NestedSlice(crd.Resource.Object, "spec", "versions")
	for _, v := range versions {
		if m, ok := v.(map[string]any); ok && m["name"] == "v1" && m["served"] == true {
			return true
		}
	}
	return false
}

// monitoringLabels are the labels of the ServiceMonitor and PrometheusRule:
// the instance's, and those the platform's Prometheus selects them by.
func monitoringLabels(in *instance, prom PrometheusPeer) map[string]string {
	l := labels(in)
	maps.Copy(l, prom.SelectLabels)
	return l
}

// metricsSelector selects the instance's metrics Services: the exporter's
// and, with HTTP on, the gateway's.
func metricsSelector(in *instance) map[string]string {
	return map[string]string{
		contract.LabelInstance:  in.Name,
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelComponent: contract.ComponentMetrics,
	}
}

// serviceMonitor has Prometheus scrape every pod behind the instance's
// metrics Services. Its targets carry the namespace, service and pod labels
// the alert rules select by.
func serviceMonitor(in *instance, prom PrometheusPeer) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector":          map[string]any{"matchLabels": stringMap(metricsSelector(in))},
			"namespaceSelector": map[string]any{"matchNames": []any{in.Namespace}},
			"endpoints":         []any{map[string]any{"port": "metrics", "path": "/metrics", "interval": scrapeInterval}},
		},
	}}
	u.SetAPIVersion(monitoringAPIVersion)
	u.SetKind(kindServiceMonitor)
	u.SetName(contract.MonitorName(in.Name))
	u.SetNamespace(in.Namespace)
	u.SetLabels(monitoringLabels(in, prom))
	return u
}

// prometheusRule holds the instance's alerts (alerts.yaml).
func prometheusRule(in *instance, prom PrometheusPeer, a alerting) (*unstructured.Unstructured, error) {
	groups, err := alertGroups(in, a)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"groups": groups}}}
	u.SetAPIVersion(monitoringAPIVersion)
	u.SetKind(kindPrometheusRule)
	u.SetName(contract.MonitorName(in.Name))
	u.SetNamespace(in.Namespace)
	u.SetLabels(monitoringLabels(in, prom))
	return u, nil
}

// gatewayMetricsService puts the gateway's /metrics behind a Service the
// ServiceMonitor selects (the gateway's own Service serves the REST API
// only).
func gatewayMetricsService(in *instance) *corev1.Service {
	l := gatewayLabels(in)
	l[contract.LabelComponent] = contract.ComponentMetrics
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.GatewayMetricsServiceName(in.Name), Namespace: in.Namespace, Labels: l},
		Spec: corev1.ServiceSpec{
			Selector: gatewaySelector(in),
			Ports: []corev1.ServicePort{{
				Name: "metrics", Port: contract.GatewayMetricsPort, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// gatewayMetricsNetworkPolicy admits the platform's Prometheus to the
// gateway's metrics port, when the tenant's NetworkPolicies close the
// gateway to everything but the REST API's clients.
func gatewayMetricsNetworkPolicy(in *instance, prom PrometheusPeer) *networkingv1.NetworkPolicy {
	meta := metav1.ObjectMeta{Name: contract.GatewayMetricsServiceName(in.Name), Namespace: in.Namespace, Labels: gatewayLabels(in)}
	return ingressPolicy(meta, gatewaySelector(in), contract.GatewayMetricsPort, []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: prom.Namespace}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: prom.Labels},
	}})
}

// monitorWithPrometheus composes, for an instance with monitoring, what the
// Prometheus Operator reads: the gateway's metrics Service (and its policy)
// when HTTP is on, and, when the cluster has the operator's CRDs, a
// ServiceMonitor and a PrometheusRule. Without the CRDs the condition
// Monitoring says so: the exporter and its Service still run, for a
// Prometheus configured by other means.
func (f *Function) monitorWithPrometheus(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse, objs map[resource.Name]runtime.Object, in *instance, p *params) error {
	gateway := p.HTTP != nil
	if gateway {
		objs[nameGatewayMetricsService] = gatewayMetricsService(in)
		if p.NetworkPolicy {
			objs[nameGatewayMetricsNetworkPolicy] = gatewayMetricsNetworkPolicy(in, f.prometheus)
		}
	}
	requirePrometheusCRDs(rsp)
	ok, known := prometheusOperator(req)
	switch {
	case ok:
		rule, err := prometheusRule(in, f.prometheus, alerting{Gateway: gateway, Backup: p.Backup != nil && p.Backup.Schedule != ""})
		if err != nil {
			return err
		}
		objs[nameServiceMonitor] = serviceMonitor(in, f.prometheus)
		objs[namePrometheusRule] = rule
		response.ConditionTrue(rsp, conditionMonitoring, "PrometheusOperator").
			WithMessage("ServiceMonitor and PrometheusRule " + contract.MonitorName(in.Name) + " are composed").TargetCompositeAndClaim()
	case known:
		response.ConditionFalse(rsp, conditionMonitoring, "NoPrometheusOperator").
			WithMessage("the cluster has no Prometheus Operator CRDs (" + crdServiceMonitors + ", " + crdPrometheusRules +
				" serving v1): no ServiceMonitor or PrometheusRule is composed; the exporter serves on Service " +
				contract.MetricsServiceName(in.Name) + " port metrics for a Prometheus configured otherwise").TargetCompositeAndClaim()
	}
	return nil
}

// stringMap is m as an unstructured value.
func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// monitoringOff tells the tenant monitoring is off when the instance
// reported it before: Crossplane keeps a condition a function no longer
// sends, so a Monitoring=True from when it was on would otherwise stay. An
// instance that never had monitoring gets no condition about it.
func monitoringOff(rsp *fnv1.RunFunctionResponse, xr map[string]any) {
	conds, _, _ := unstructured.NestedSlice(xr, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == conditionMonitoring {
			response.ConditionFalse(rsp, conditionMonitoring, "Disabled").
				WithMessage("spec.monitoring.enabled is false: no exporter, ServiceMonitor or PrometheusRule is composed").TargetCompositeAndClaim()
			return
		}
	}
}
