package local

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Drain cordons a node and evicts its pods as `kubectl drain` does (the
// pinned kubectl, through the Eviction API: PodDisruptionBudgets hold it
// back), waiting at most timeout. The pod runner stops an evicted pod as a
// kubelet would (preStop, grace period) and the scheduler places its
// replacement on another node.
func (c *Cluster) Drain(ctx context.Context, node string, timeout time.Duration) error {
	return c.kubectl(ctx, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout="+timeout.String())
}

// Uncordon makes a drained node schedulable again.
func (c *Cluster) Uncordon(ctx context.Context, node string) error {
	return c.kubectl(ctx, "uncordon", node)
}

func (c *Cluster) kubectl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.tools["kubectl"], args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
