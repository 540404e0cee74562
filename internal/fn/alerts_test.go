package fn

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// alertsTest is the promtool unit test file of alerts.yaml.
const alertsTest = "testdata/alerts_test.yaml"

// TestAlertRules runs promtool (Debian's prometheus package, which hack/deps.sh
// installs) on the rules the function composes for team-a/cache with HTTP
// and scheduled backups on: `promtool check rules` on them as composed, then `promtool test rules`
// with testdata/alerts_test.yaml, where every alert has a case that fires and
// one that does not, and another tenant's series never fire.
func TestAlertRules(t *testing.T) {
	promtool := testenv.Binary(t, "promtool")
	groups, err := alertGroups(&instance{Name: "cache", Namespace: "team-a"}, alerting{Gateway: true, Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, v any) {
		t.Helper()
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("composed.yaml", map[string]any{"groups": groups})
	// The unit tests assert labels and summaries; descriptions (long, checked
	// as templates by check rules) are left out of what they compare.
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			delete(r.(map[string]any)["annotations"].(map[string]any), "description")
		}
	}
	write("rules.yaml", map[string]any{"groups": groups})
	tests, err := os.ReadFile(alertsTest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{{"check", "rules", "composed.yaml"}, {"test", "rules", "tests.yaml"}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
}

// TestAlertRulesTested checks that alerts_test.yaml has, for every alert of
// alerts.yaml, a case where it fires and one where it must not, and that
// every alert has a severity, a summary and a description.
func TestAlertRulesTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal([]byte(alertRules), &rules); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(alertsTest)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if !fires[r.Alert] {
				t.Errorf("%s: no case in %s where it fires", r.Alert, alertsTest)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no case in %s where it must not fire", r.Alert, alertsTest)
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: want a summary and a description saying what to do", r.Alert)
			}
		}
	}
	for name := range fires {
		if !slices.Contains(alerts, name) {
			t.Errorf("%s tests %s, which alerts.yaml does not define", alertsTest, name)
		}
	}
}

// TestAlertGroups checks what alertGroups makes of alerts.yaml: every
// placeholder replaced by the instance's names, and the gateway's group only
// for an instance with a gateway.
func TestAlertGroups(t *testing.T) {
	names := func(gs []any) []string {
		var n []string
		for _, g := range gs {
			n = append(n, g.(map[string]any)["name"].(string))
		}
		return n
	}
	cases := map[string]struct {
		reason   string
		alerting alerting
		want     []string
	}{
		"WithGatewayAndBackups": {
			reason:   "An instance with HTTP on and scheduled backups gets the gateway's and the backups' alerts too.",
			alerting: alerting{Gateway: true, Backup: true},
			want:     []string{"redishttp-redis", alertGroupGateway, alertGroupBackup},
		},
		"WithGateway": {
			reason:   "An instance with HTTP on gets the gateway's alerts too.",
			alerting: alerting{Gateway: true},
			want:     []string{"redishttp-redis", alertGroupGateway},
		},
		"RedisOnly": {
			reason: "An instance without a gateway or scheduled backups gets no alert on metrics that cannot exist.",
			want:   []string{"redishttp-redis"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			gs, err := alertGroups(&instance{Name: "db", Namespace: "team-x"}, tc.alerting)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(gs)); diff != "" {
				t.Errorf("%s\nalertGroups(...): -want, +got:\n%s", tc.reason, diff)
			}
			b, err := yaml.Marshal(gs)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{placeholderNamespace, placeholderService, placeholderGatewayService, placeholderBackupCronJob} {
				if bytes.Contains(b, []byte(p)) {
					t.Errorf("%s\nalertGroups(...) left placeholder %s", tc.reason, p)
				}
			}
			if !bytes.Contains(b, []byte(`namespace="team-x",service="db-redis-metrics"`)) {
				t.Errorf("%s\nalertGroups(...): selectors do not name team-x/db-redis-metrics:\n%s", tc.reason, b)
			}
		})
	}
}
