package contract

// Names of monitoring (spec.monitoring): the exporter sidecar, its ACL user
// and its Service.
const (
	// ExporterUser is the ACL user the exporter logs in as: it may run
	// INFO and a few read-only server commands, no command on keys.
	ExporterUser = "redishttp-exporter"
	// ExporterPasswordKey is the auth Secret's key holding its password.
	ExporterPasswordKey = "exporterPassword"
	// ExporterPort serves the exporter's /metrics.
	ExporterPort = 9121
)

// MetricsServiceName names the Service in front of the exporter.
func MetricsServiceName(instance string) string { return instance + "-redis-metrics" }

// LabelComponent and ComponentMetrics label the metrics Service, which a
// ServiceMonitor selects.
const (
	LabelComponent   = "app.kubernetes.io/component"
	ComponentMetrics = "metrics"
)

// GatewayMetricsServiceName names the Service in front of the HTTP gateway's
// /metrics, which the instance's ServiceMonitor selects beside the
// exporter's.
func GatewayMetricsServiceName(instance string) string { return instance + "-http-metrics" }

// MonitorName names the instance's ServiceMonitor and PrometheusRule.
func MonitorName(instance string) string { return instance + "-redis" }

// DashboardConfigMapName names the ConfigMap holding the instance's Grafana
// dashboard.
func DashboardConfigMapName(instance string) string { return instance + "-redis-dashboard" }
