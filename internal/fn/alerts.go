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
	placeholderBackupCronJob  = `"BACKUP_CRONJOB"`
)

// alertsYAML's groups composed only for instances that have what they watch.
const (
	alertGroupGateway = "redishttp-gateway"
	alertGroupBackup  = "redishttp-backup"
)

// alerting says which of alerts.yaml's optional groups an instance gets.
type alerting struct {
	// Gateway: spec.http.enabled.
	Gateway bool
	// Backup: spec.backup with a schedule.
	Backup bool
}

// alertGroups are the rule groups of in's PrometheusRule: alerts.yaml with
// every selector naming the instance (its namespace, metrics Services and
// backup CronJob, all DNS labels: nothing to escape), without the groups of
// what the instance does not have.
func alertGroups(in *instance, a alerting) ([]any, error) {
	src := strings.NewReplacer(
		placeholderNamespace, strconv.Quote(in.Namespace),
		placeholderService, strconv.Quote(contract.MetricsServiceName(in.Name)),
		placeholderGatewayService, strconv.Quote(contract.GatewayMetricsServiceName(in.Name)),
		placeholderBackupCronJob, strconv.Quote(contract.BackupCronJobName(in.Name)),
	).Replace(alertRules)
	var file struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := yaml.Unmarshal([]byte(src), &file); err != nil {
		return nil, errors.Wrap(err, "cannot parse the alert rules")
	}
	groups := make([]any, 0, len(file.Groups))
	for _, g := range file.Groups {
		if g["name"] == alertGroupGateway && !a.Gateway || g["name"] == alertGroupBackup && !a.Backup {
			continue
		}
		groups = append(groups, g)
	}
	return groups, nil
}
