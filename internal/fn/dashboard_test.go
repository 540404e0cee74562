package fn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/gateway"
	"github.com/ai-decenter/redishttp/internal/testenv"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// A panel of dashboard.json, as far as the tests look.
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type grafanaDashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var dashboardVariable = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)

// TestDashboard checks the dashboard an instance gets: valid JSON with its
// own uid and title, the constants naming its Services, unique panel ids,
// every panel on the data source variable, every variable a query uses
// defined, and every query valid PromQL (promtool check rules parses them as
// recording rules, with the instance's values in place of the variables).
func TestDashboard(t *testing.T) {
	a, b := &instance{Name: "cache", Namespace: "team-a"}, &instance{Name: "cache", Namespace: "team-b"}
	ja, err := dashboard(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := dashboard(b)
	if err != nil {
		t.Fatal(err)
	}
	var d, db grafanaDashboard
	if err := json.Unmarshal(ja, &d); err != nil {
		t.Fatalf("dashboard(...) is not JSON: %v", err)
	}
	if err := json.Unmarshal(jb, &db); err != nil {
		t.Fatal(err)
	}
	if d.UID == db.UID || len(d.UID) > 40 || d.UID != dashboardUID(a) {
		t.Errorf("dashboard uids %q and %q: want distinct per instance, at most 40 characters", d.UID, db.UID)
	}
	if d.Title != "Redis team-a/cache" {
		t.Errorf("dashboard title %q, want Redis team-a/cache", d.Title)
	}
	vars := map[string]string{"__rate_interval": "5m"}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Query
	}
	want := map[string]string{"namespace": "team-a", "service": "cache-redis-metrics", "gateway_service": "cache-http-metrics"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("dashboard variable %s = %q, want %q", k, vars[k], v)
		}
	}

	ids := map[int]bool{}
	var rules []any
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: want the Prometheus data source variable ${datasource}, got %+v", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr := dashboardVariable.ReplaceAllStringFunc(tg.Expr, func(m string) string {
				name := dashboardVariable.FindStringSubmatch(m)[1]
				v, ok := vars[name]
				if !ok {
					t.Errorf("panel %q: query %s uses $%s, which the dashboard does not define", p.Title, tg.RefID, name)
				}
				return v
			})
			rules = append(rules, map[string]any{"record": fmt.Sprintf("dashboard:panel%d_%s", p.ID, strings.ToLower(tg.RefID)), "expr": expr})
		}
	}
	if len(rules) < 10 {
		t.Fatalf("the dashboard has %d queries, want its panels", len(rules))
	}

	promtool := testenv.Binary(t, "promtool")
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries are not valid PromQL: %v\n%s", err, msg)
	}
}

// TestRunFunctionDashboard checks the dashboard's ConfigMap is composed, with
// the label Grafana's sidecar looks for, only with spec.monitoring.dashboard,
// and that a dashboard without monitoring is refused naming the field.
func TestRunFunctionDashboard(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "monitoring": {"enabled": true, "dashboard": true}}`)}})
	r, ok := rsp.GetDesired().GetResources()[string(nameDashboardConfigMap)]
	if !ok {
		t.Fatalf("no %s composed with spec.monitoring.dashboard", nameDashboardConfigMap)
	}
	cm := &corev1.ConfigMap{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(r.GetResource().AsMap(), cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != "cache-redis-dashboard" || cm.Namespace != "team-a" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap %s/%s labelled %v: want team-a/cache-redis-dashboard with grafana_dashboard: \"1\"", cm.Namespace, cm.Name, cm.Labels)
	}
	want, err := dashboard(&instance{Name: "cache", Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"redishttp-team-a-cache.json": string(want)}, cm.Data); diff != "" {
		t.Errorf("dashboard ConfigMap data: -want, +got:\n%s", diff)
	}

	off := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "monitoring": {"enabled": true}}`)}})
	if _, ok := off.GetDesired().GetResources()[string(nameDashboardConfigMap)]; ok {
		t.Error("a dashboard ConfigMap without spec.monitoring.dashboard")
	}

	alone := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "monitoring": {"dashboard": true}}`)}})
	if len(alone.GetDesired().GetResources()) != 0 {
		t.Errorf("spec.monitoring.dashboard without enabled composed %v", desiredKinds(alone))
	}
	var msgs []string
	for _, res := range alone.GetResults() {
		msgs = append(msgs, res.GetMessage())
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "spec.monitoring.dashboard: Invalid value: true: "+msgDashboardNeedsMonitoring) {
		t.Errorf("spec.monitoring.dashboard without enabled: want a result naming the field, got %q", msgs)
	}
}

// metricNames are the metric names a PromQL text refers to with prefix
// (histogram series suffixes removed).
func metricNames(text []byte, prefix string) map[string]bool {
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(prefix+`[a-z_]+`).FindAll(text, -1) {
		n := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(string(m), "_bucket"), "_sum"), "_count")
		names[n] = true
	}
	return names
}

// TestAlertAndDashboardMetricsExist checks that every Redis metric the alert
// rules and the dashboard use is one the real exporter serves, scraping the
// Debian build of it with the sidecar's arguments as the exporter's user,
// against a real replica of a real master (replicas alone have
// redis_master_link_up).
func TestAlertAndDashboardMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs redis-server and the exporter")
	}
	const exporterPassword = "Ex0123456789abcdefghijklmnopqrstuvwxyzAB"
	line := strings.Fields(strings.TrimSpace(exporterUserConf(exporterPassword)))
	user := append([]string{"--" + line[0]}, line[1:]...)
	master := testenv.StartRedis(t, append([]string{"--requirepass", testPassword}, user...)...)
	host, port, _ := strings.Cut(master.Addr, ":")
	replica := testenv.StartRedis(t, append([]string{"--requirepass", testPassword, "--masterauth", testPassword, "--replicaof", host, port}, user...)...)
	metrics := scrapeExporter(t, replica.Addr, exporterPassword, "redis_master_link_up", "1")

	served := metricNames(metrics, "redis_")
	used := metricNames([]byte(alertRules), "redis_")
	for n := range metricNames(dashboardJSON, "redis_") {
		used[n] = true
	}
	for n := range used {
		if !served[n] {
			t.Errorf("%s is used by the alert rules or the dashboard but the exporter does not serve it", n)
		}
	}
	if !bytes.Contains(metrics, []byte("redis_up 1")) {
		t.Error("the exporter did not serve redis_up 1")
	}
}

// describer records the collectors registered with it.
type describer struct{ collectors []prometheus.Collector }

func (d *describer) Register(c prometheus.Collector) error {
	d.collectors = append(d.collectors, c)
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	d.collectors = append(d.collectors, cs...)
}

func (d *describer) Unregister(prometheus.Collector) bool { return false }

// TestGatewayMetricsExist checks that every gateway metric the alert rules
// and the dashboard use is one the gateway registers.
func TestGatewayMetricsExist(t *testing.T) {
	d := &describer{}
	gateway.NewMetrics(d)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	served := map[string]bool{}
	for _, c := range d.collectors {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for desc := range ch {
			if m := fq.FindStringSubmatch(desc.String()); m != nil {
				served[m[1]] = true
			}
		}
	}
	used := metricNames([]byte(alertRules), "redishttp_gateway_")
	for n := range metricNames(dashboardJSON, "redishttp_gateway_") {
		used[n] = true
	}
	if len(used) == 0 {
		t.Fatal("neither the alert rules nor the dashboard use a gateway metric")
	}
	for n := range used {
		if !served[n] {
			t.Errorf("%s is used by the alert rules or the dashboard but the gateway does not register it", n)
		}
	}
}
