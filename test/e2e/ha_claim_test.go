//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestHighAvailabilityClaim runs the core of TestHighAvailability in claim
// mode, where the tenant's object is a claim of a cluster-scoped legacy XR
// and the connection Secret is published through connection details: three
// replicas Ready with one master, the claim's Secret names the Sentinels,
// a kill -9 of the master fails over with writes through the url again, and
// a backup of the three pods restores into a new claim with three pods, every
// key on each (ha_backup_test.go).
func TestHighAvailabilityClaim(t *testing.T) {
	c := start(t, local.ModeClaim)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	step := stepper(ctx, t, c, teamHA, teamRestore)
	inst := haInstance(ctx, t, c)
	step("ReadyWithOneMaster", func(t *testing.T) {
		if err := c.Apply(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamHA, name, 4*time.Minute); err != nil {
			t.Fatal(err)
		}
		settled(ctx, t, c, urlClient(ctx, t, c))
		s := &corev1.Secret{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: "cache-redis"}, s); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s:%d", contract.SentinelHost(name, teamHA, "cluster.local"), contract.SentinelPort)
		if got := string(s.Data[contract.KeySentinelAddress]); got != want {
			t.Errorf("the claim's connection Secret %s: want %q, got %q", contract.KeySentinelAddress, want, got)
		}
		if got := string(s.Data[contract.KeySentinelMasterName]); got != contract.SentinelMasterName {
			t.Errorf("the claim's connection Secret %s: want %q, got %q", contract.KeySentinelMasterName, contract.SentinelMasterName, got)
		}
	})
	rc := urlClient(ctx, t, c)
	step("FailoverKillMasterProcess", func(t *testing.T) {
		old := settled(ctx, t, c, rc)
		p, err := c.Pod(teamHA, old)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := p.Kill("redis"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 90*time.Second, "writes through the claim's Secret's url succeed on a new master", func() error {
			if err := rc.Set(ctx, "after-kill", "1", 0).Err(); err != nil {
				return err
			}
			if m := master(ctx, c); m == old || m == "" {
				return fmt.Errorf("the master is still %q", m)
			}
			return nil
		})
		t.Logf("claim mode, failover by kill -9: writes through the url succeeded again %.1fs after the fault", time.Since(t0).Seconds())
		if n, err := rc.DBSize(ctx).Result(); err != nil || n < 100 {
			t.Errorf("the new master should have the 100 keys written before, DBSIZE %d %v", n, err)
		}
		settled(ctx, t, c, rc)
	})
	// Last: the restored instance's three pods stay up.
	step("BackupOfThreePodsRestoresIntoANewClaim", func(t *testing.T) { haBackupAndRestore(ctx, t, c, rc, inst) })
}
