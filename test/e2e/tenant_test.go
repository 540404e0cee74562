//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// kubectlGet runs `kubectl -n ns get redishttpinstance name`, as a tenant
// would, and returns its columns by header.
func kubectlGet(ctx context.Context, t *testing.T, c *local.Cluster, ns, name string) (map[string]string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "kubectl"), "-n", ns, "get", "redishttpinstance", name)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("kubectl get: %w: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("kubectl get printed %q", out)
	}
	return columns(lines[0], lines[1]), nil
}

// columns maps each header of kubectl's table to its cell in row, by the
// header's position: a cell may be empty (REPLICAS of a single Redis), so
// splitting the row on spaces would shift every column after it. The key ""
// holds the header line with single spaces.
func columns(header, row string) map[string]string {
	head := strings.Fields(header)
	cols := map[string]string{"": strings.Join(head, " ")}
	at := 0
	starts := make([]int, len(head))
	for i, h := range head {
		starts[i] = at + strings.Index(header[at:], h)
		at = starts[i] + len(h)
	}
	for i, h := range head {
		from, to := min(starts[i], len(row)), len(row)
		if i+1 < len(head) {
			to = min(starts[i+1], len(row))
		}
		cols[h] = strings.TrimSpace(row[from:to])
	}
	return cols
}

// tenantSteps are what a tenant who makes a mistake sees: a spec the API
// server can check is refused at apply with a message naming the field; a
// change only the function can check, made to a running instance, shows as
// PHASE Invalid in kubectl get with the MEMORY that runs, a Warning event on
// the tenant's own object, and what runs is left alone.
func tenantSteps(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("InvalidSpecRefusedAtApply", func(t *testing.T) {
		for _, tc := range []struct {
			field string
			set   func(spec map[string]any)
		}{
			{"spec.memory", func(s map[string]any) { s["memory"] = "16Mi" }},
			{"spec.redisVersion", func(s map[string]any) { s["redisVersion"] = "6.2" }},
			{"spec.config", func(s map[string]any) { s["config"] = map[string]any{"rename-command": "FLUSHALL x"} }},
		} {
			o := instance(t, teamA)
			o.SetName("typo")
			spec := o.Object["spec"].(map[string]any)
			spec["writeConnectionSecretToRef"] = map[string]any{"name": "typo-redis"}
			tc.set(spec)
			err := c.Apply(ctx, o)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("applying an instance with a wrong %s: want a refusal naming it, got %v", tc.field, err)
			}
		}
	})

	step("InvalidChangeVisibleInKubectlGet", func(t *testing.T) {
		var before map[string]string
		testenv.Eventually(t, 2*time.Minute, "kubectl get shows PHASE Ready, MEMORY 256Mi before the change", func() error {
			var err error
			if before, err = kubectlGet(ctx, t, c, teamA, name); err != nil {
				return err
			}
			if before["PHASE"] != "Ready" || before["MEMORY"] != "256Mi" {
				return fmt.Errorf("got %v", before)
			}
			return nil
		})
		// README's sample output has the columns kubectl prints.
		readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		documented := false
		for l := range strings.SplitSeq(string(readme), "\n") {
			documented = documented || strings.Join(strings.Fields(l), " ") == before[""]
		}
		if !documented {
			t.Errorf("README.md shows no `kubectl get redishttpinstance` header like the one kubectl prints: %q", before[""])
		}
		sts := &unstructured.Unstructured{}
		sts.SetAPIVersion("apps/v1")
		sts.SetKind("StatefulSet")
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis"}, sts); err != nil {
			t.Fatal(err)
		}
		// hz is allow-listed, so the API server admits it; its value is
		// the function's to check. With it, a memory the API server admits
		// too: the refused change must not show as if it ran.
		o := instance(t, teamA)
		spec := o.Object["spec"].(map[string]any)
		spec["config"] = map[string]any{"hz": "1000"}
		spec["memory"] = "512Mi"
		if err := c.Apply(ctx, o); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "kubectl get shows PHASE Invalid", func() error {
			got, err := kubectlGet(ctx, t, c, teamA, name)
			if err != nil {
				return err
			}
			if got["PHASE"] != "Invalid" || got["MEMORY"] != "256Mi" || got["READY"] != "True" {
				return fmt.Errorf("want PHASE Invalid, MEMORY 256Mi (what runs), READY True, got %v", got)
			}
			return nil
		})
		testenv.Eventually(t, 2*time.Minute, "a Warning event on the tenant's RedisHttpInstance naming the field", func() error {
			events := &corev1.EventList{}
			if err := c.Client.List(ctx, events, client.InNamespace(teamA)); err != nil {
				return err
			}
			for _, e := range events.Items {
				if e.InvolvedObject.Kind == "RedisHttpInstance" && e.InvolvedObject.Name == name && e.Type == corev1.EventTypeWarning &&
					e.Reason == "InvalidSpec" && strings.Contains(e.Message, "spec.config[hz]") {
					return nil
				}
			}
			return fmt.Errorf("no InvalidSpec event among %d", len(events.Items))
		})
		after := &unstructured.Unstructured{}
		after.SetAPIVersion("apps/v1")
		after.SetKind("StatefulSet")
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis"}, after); err != nil {
			t.Fatal(err)
		}
		if after.GetGeneration() != sts.GetGeneration() {
			t.Errorf("the refused change touched the StatefulSet: generation %d -> %d", sts.GetGeneration(), after.GetGeneration())
		}
		// Fixing the spec makes the instance Ready again, as it was.
		if err := c.Apply(ctx, instance(t, teamA)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "kubectl get shows PHASE Ready again", func() error {
			got, err := kubectlGet(ctx, t, c, teamA, name)
			if err != nil {
				return err
			}
			if got["PHASE"] != "Ready" || got["MEMORY"] != "256Mi" {
				return fmt.Errorf("want PHASE Ready, MEMORY 256Mi, got %v", got)
			}
			return nil
		})
	})
}

func TestColumns(t *testing.T) {
	const header = "NAME    PHASE   MASTER          REPLICAS   SYNCED   AGE"
	cases := map[string]struct {
		reason string
		row    string
		want   map[string]string
	}{
		"EmptyCell": {
			reason: "An empty REPLICAS cell must not shift the columns after it.",
			row:    "cache   Ready   cache-redis-0              True     40s",
			want:   map[string]string{"": "NAME PHASE MASTER REPLICAS SYNCED AGE", "NAME": "cache", "PHASE": "Ready", "MASTER": "cache-redis-0", "REPLICAS": "", "SYNCED": "True", "AGE": "40s"},
		},
		"EveryCell": {
			reason: "A full row maps each cell to its header.",
			row:    "cache   Ready   cache-redis-1   2          True     5m",
			want:   map[string]string{"": "NAME PHASE MASTER REPLICAS SYNCED AGE", "NAME": "cache", "PHASE": "Ready", "MASTER": "cache-redis-1", "REPLICAS": "2", "SYNCED": "True", "AGE": "5m"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, columns(header, tc.row)); diff != "" {
				t.Errorf("%s\ncolumns(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
