package fn

import (
	_ "embed"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/errors"
)

// alertRules is the source of every instance's alert rules (alerts.yaml), a
// Prometheus rule file whose selectors hold placeholders.
//
//go:embed alerts.yaml
var alertRules string

// Placeholders of alerts.yaml, replaced by an instance's names.
const (
	placeholderNamespace      = `"NAMESPACE"`
	placeholderService        = `"SERVICE"`
	placeholderGatewayService = `"GATEWAY_SERVICE"`
)

// alertGroupGateway is alerts.yaml's group of the HTTP gateway's alerts.
const alertGroupGateway = "redishttp-gateway"

// alertGroups are the rule groups of in's PrometheusRule: alerts.yaml with
// every selector naming the instance (its namespace and metrics Services,
// both DNS labels: nothing to escape), without the gateway's group when
// the instance has no gateway.
func alertGroups(in *instance, gateway bool) ([]any, error) {
	src := strings.NewReplacer(
		placeholderNamespace, strconv.Quote(in.Namespace),
		placeholderService, strconv.Quote(contract.MetricsServiceName(in.Name)),
		placeholderGatewayService, strconv.Quote(contract.GatewayMetricsServiceName(in.Name)),
	).Replace(alertRules)
	var file struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := yaml.Unmarshal([]byte(src), &file); err != nil {
		return nil, errors.Wrap(err, "cannot parse the alert rules")
	}
	groups := make([]any, 0, len(file.Groups))
	for _, g := range file.Groups {
		if g["name"] == alertGroupGateway && !gateway {
			continue
		}
		groups = append(groups, g)
	}
	return groups, nil
}
