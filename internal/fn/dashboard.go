package fn

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/errors"
)

// dashboardJSON is the Grafana dashboard of an instance (dashboard.json, the
// one source): its constant variables namespace, service and
// gateway_service are set per instance, with its uid and title.
//
//go:embed dashboard.json
var dashboardJSON []byte

// Grafana's dashboard sidecar loads every ConfigMap with this label.
const (
	labelGrafanaDashboard = "grafana_dashboard"
	valueGrafanaDashboard = "1"
)

const nameDashboardConfigMap = "dashboard-configmap"

const msgDashboardNeedsMonitoring = "needs spec.monitoring.enabled: the dashboard shows the exporter's metrics"

// dashboardUID is the instance's dashboard uid: stable, unique per
// namespace and name, and within Grafana's 40 characters.
func dashboardUID(in *instance) string {
	sum := sha256.Sum256([]byte(in.Namespace + "/" + in.Name))
	return "redishttp-" + hex.EncodeToString(sum[:8])
}

// dashboard is dashboard.json for in.
func dashboard(in *instance) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, errors.Wrap(err, "cannot parse the dashboard")
	}
	d["uid"] = dashboardUID(in)
	d["title"] = "Redis " + in.Namespace + "/" + in.Name
	values := map[string]string{
		"namespace":       in.Namespace,
		"service":         contract.MetricsServiceName(in.Name),
		"gateway_service": contract.GatewayMetricsServiceName(in.Name),
	}
	templating, _ := d["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		if value, ok := values[name]; ok {
			m["query"] = value
			m["current"] = map[string]any{"text": value, "value": value}
			m["options"] = []any{map[string]any{"text": value, "value": value, "selected": true}}
		}
	}
	b, err := json.MarshalIndent(d, "", "  ")
	return b, errors.Wrap(err, "cannot encode the dashboard")
}

// dashboardConfigMap publishes in's dashboard for Grafana's sidecar. The
// dashboard holds names only (no secret): the tenant may read it.
func dashboardConfigMap(in *instance) (*corev1.ConfigMap, error) {
	b, err := dashboard(in)
	if err != nil {
		return nil, err
	}
	l := labels(in)
	l[labelGrafanaDashboard] = valueGrafanaDashboard
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: contract.DashboardConfigMapName(in.Name), Namespace: in.Namespace, Labels: l},
		Data:       map[string]string{"redishttp-" + in.Namespace + "-" + in.Name + ".json": string(b)},
	}, nil
}
