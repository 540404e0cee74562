//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// The monitored instance lives in a namespace of its own, so that nothing
// the other steps assert on team-a or team-b changes.
const (
	teamM     = "team-m"
	monitored = "metrics"
)

// conditionOf returns the status and reason of condition typ of the
// RedisHttpInstance namespace/name, "" when it has none.
func conditionOf(ctx context.Context, c *local.Cluster, namespace, name, typ string) (string, string, error) {
	u, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", namespace, name)
	if err != nil {
		return "", "", err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		m, _ := cd.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			return s, r, nil
		}
	}
	return "", "", nil
}

// waitCondition waits until condition typ of the instance has status and
// reason.
func waitCondition(ctx context.Context, t *testing.T, c *local.Cluster, namespace, name, typ, status, reason string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, fmt.Sprintf("%s/%s condition %s=%s (%s)", namespace, name, typ, status, reason), func() error {
		s, r, err := conditionOf(ctx, c, namespace, name, typ)
		if err != nil {
			return err
		}
		if s != status || r != reason {
			return fmt.Errorf("condition %s is %q (%q)", typ, s, r)
		}
		return nil
	})
}

// prometheusOperatorCRD is a minimal CustomResourceDefinition of one of the
// Prometheus Operator's kinds: what the function looks for (its name,
// serving v1), and enough for Crossplane to compose objects of it.
func prometheusOperatorCRD(kind, plural string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": plural + ".monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com",
			"scope": "Namespaced",
			"names": map[string]any{"kind": kind, "listKind": kind + "List", "plural": plural, "singular": strings.ToLower(kind)},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
					},
				}},
			}},
		},
	}}
}

// monitoringSteps are the e2e of spec.monitoring on the running control
// plane: the exporter sidecar scraped through its Service, its ACL user
// refused a write, the dashboard published, and a ServiceMonitor and a
// PrometheusRule composed only once the Prometheus Operator's CRDs exist.
func monitoringSteps(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("MonitoringExporterScrapedItsUserCannotWrite", func(t *testing.T) {
		if err := c.EnsureNamespace(ctx, teamM, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
			t.Fatal(err)
		}
		o := instance(t, teamM)
		o.SetName(monitored)
		spec := o.Object["spec"].(map[string]any)
		delete(spec, "http")
		spec["monitoring"] = map[string]any{"enabled": true, "dashboard": true}
		spec["writeConnectionSecretToRef"] = map[string]any{"name": monitored + "-redis"}
		if err := c.Apply(ctx, o); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamM, monitored, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		// No Prometheus Operator yet: said, and nothing of it composed.
		waitCondition(ctx, t, c, teamM, monitored, "Monitoring", "False", "NoPrometheusOperator", 2*time.Minute)

		host, err := c.ServiceAddress(ctx, teamM, contract.MetricsServiceName(monitored))
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + net.JoinHostPort(host, strconv.Itoa(contract.ExporterPort)) + "/metrics"
		up := regexp.MustCompile(`(?m)^redis_up 1$`)
		testenv.Eventually(t, 2*time.Minute, "redis_up 1 at "+url, func() error {
			rsp, err := http.Get(url)
			if err != nil {
				return err
			}
			defer rsp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(rsp.Body, 4<<20))
			if err != nil {
				return err
			}
			if !up.Match(b) {
				return fmt.Errorf("%s: no redis_up 1 in %d bytes", rsp.Status, len(b))
			}
			return nil
		})

		auth := &corev1.Secret{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamM, Name: contract.AuthSecretName(monitored)}, auth); err != nil {
			t.Fatal(err)
		}
		redisHost, err := c.ServiceAddress(ctx, teamM, contract.ServiceName(monitored))
		if err != nil {
			t.Fatal(err)
		}
		exp := redis.NewClient(&redis.Options{
			Addr: net.JoinHostPort(redisHost, strconv.Itoa(contract.RedisPort)), Username: contract.ExporterUser,
			Password: string(auth.Data[contract.ExporterPasswordKey]), Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		})
		defer exp.Close()
		if err := exp.Ping(ctx).Err(); err != nil {
			t.Fatalf("the exporter's user cannot log in: %v", err)
		}
		for _, cmd := range [][]any{{"SET", "k", "v"}, {"GET", "k"}, {"CONFIG", "GET", "requirepass"}} {
			if err := exp.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("%v as the exporter's user: want NOPERM, got %v", cmd, err)
			}
		}

		cm := &corev1.ConfigMap{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamM, Name: contract.DashboardConfigMapName(monitored)}, cm); err != nil {
			t.Fatalf("dashboard ConfigMap: %v", err)
		}
		if cm.Labels["grafana_dashboard"] != "1" || len(cm.Data) != 1 {
			t.Errorf("dashboard ConfigMap labelled %v with %d keys: want grafana_dashboard: \"1\" and one dashboard", cm.Labels, len(cm.Data))
		}
		for k, v := range cm.Data {
			if !json.Valid([]byte(v)) {
				t.Errorf("dashboard ConfigMap key %s is not JSON", k)
			}
		}
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
			if _, err := c.Get(ctx, "monitoring.coreos.com/v1", kind, teamM, contract.MonitorName(monitored)); err == nil {
				t.Errorf("a %s exists before its CRD", kind)
			}
		}
	})

	step("MonitoringServiceMonitorAndRulesOnceCRDsExist", func(t *testing.T) {
		if err := c.Apply(ctx, prometheusOperatorCRD("ServiceMonitor", "servicemonitors"), prometheusOperatorCRD("PrometheusRule", "prometheusrules")); err != nil {
			t.Fatal(err)
		}
		for _, crd := range []string{"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"} {
			if err := c.WaitConditions(ctx, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd, 2*time.Minute, "Established"); err != nil {
				t.Fatal(err)
			}
		}
		// Installing a CRD does not wake the instance; a tenant's edit
		// does (else Crossplane's next poll, up to a minute later).
		o, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamM, monitored)
		if err != nil {
			t.Fatal(err)
		}
		// A merge patch, not an update: Crossplane writes the instance
		// too, and an update of a stale copy fails with a conflict.
		nudge := []byte(`{"metadata":{"annotations":{"e2e.redishttp.io/nudge":"crds-installed"}}}`)
		if err := c.Client.Patch(ctx, o, client.RawPatch(types.MergePatchType, nudge)); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
			testenv.Eventually(t, 2*time.Minute, kind+" "+teamM+"/"+contract.MonitorName(monitored), func() error {
				_, err := c.Get(ctx, "monitoring.coreos.com/v1", kind, teamM, contract.MonitorName(monitored))
				return err
			})
		}
		rule, err := c.Get(ctx, "monitoring.coreos.com/v1", "PrometheusRule", teamM, contract.MonitorName(monitored))
		if err != nil {
			t.Fatal(err)
		}
		groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
		if len(groups) != 1 {
			t.Errorf("PrometheusRule: want the Redis alert group only (no gateway), got %d groups", len(groups))
		}
		waitCondition(ctx, t, c, teamM, monitored, "Monitoring", "True", "PrometheusOperator", 2*time.Minute)
		if err := c.WaitInstanceReady(ctx, teamM, monitored, 2*time.Minute); err != nil {
			t.Error(err)
		}
		// Leave nothing running for the later steps.
		if err := c.Client.Delete(ctx, o); err != nil {
			t.Errorf("cannot delete the monitored instance: %v", err)
		}
	})
}
