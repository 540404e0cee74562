//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

const teamHA = "team-ha"

// TestHighAvailability runs one instance with three replicas and HTTP on the
// local platform (real redis-server and Sentinel processes, our coordinator,
// the cluster's Services following the role label) and injects faults.
// Sub-tests build on each other. Timings are printed, never asserted.
func TestHighAvailability(t *testing.T) {
	c := start(t, local.ModeNamespaced)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	step := stepper(ctx, t, c, teamHA)
	inst := haInstance(ctx, t, c)

	var rc *redis.Client
	step("ReadyWithOneMaster", func(t *testing.T) {
		if err := c.Apply(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamHA, name, 4*time.Minute); err != nil {
			t.Fatal(err)
		}
		settled(ctx, t, c, urlClient(ctx, t, c))
	})
	rc = urlClient(ctx, t, c)

	step("ReplicasTwoRefused", func(t *testing.T) {
		two := inst.DeepCopy()
		if err := setSpec(two, "replicas", int64(2)); err != nil {
			t.Fatal(err)
		}
		err := c.Apply(ctx, two)
		if err == nil || !strings.Contains(err.Error(), "spec.replicas") || !strings.Contains(err.Error(), `"3"`) {
			t.Errorf("replicas: 2 should be refused at apply naming spec.replicas and the allowed values, got %v", err)
		}
	})

	failover := func(t *testing.T, what string, inject func(pod string) error, heal ...func() error) {
		old := settled(ctx, t, c, rc)
		t0 := time.Now()
		if err := inject(old); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 90*time.Second, "writes through the Secret's url succeed on a new master", func() error {
			if err := rc.Set(ctx, "after-"+what, "1", 0).Err(); err != nil {
				return err
			}
			m := master(ctx, c)
			if m == old || m == "" {
				return fmt.Errorf("the master is still %q", m)
			}
			return nil
		})
		t.Logf("failover by %s: writes through the url succeeded again %.1fs after the fault", what, time.Since(t0).Seconds())
		if n, err := rc.DBSize(ctx).Result(); err != nil || n < 100 {
			t.Errorf("the new master should have the 100 keys written before, DBSIZE %d %v", n, err)
		}
		for _, h := range heal {
			if err := h(); err != nil {
				t.Fatal(err)
			}
		}
		settled(ctx, t, c, rc)
	}

	step("FailoverKillMasterProcess", func(t *testing.T) {
		failover(t, "kill -9", func(pod string) error {
			p, err := c.Pod(teamHA, pod)
			if err != nil {
				return err
			}
			return p.Kill("redis")
		})
	})

	step("FailoverForceDeleteMasterPod", func(t *testing.T) {
		failover(t, "force-delete", func(pod string) error {
			return c.Client.Delete(ctx, haPod(pod), client.GracePeriodSeconds(0))
		})
	})

	step("FrozenMasterReplacedAndRejoins", func(t *testing.T) {
		var frozen string
		thaw := func() error {
			p, err := c.Pod(teamHA, frozen)
			if err != nil {
				return err
			}
			return p.Thaw()
		}
		failover(t, "SIGSTOP", func(pod string) error {
			frozen = pod
			p, err := c.Pod(teamHA, pod)
			if err != nil {
				return err
			}
			return p.Freeze()
		}, thaw)
		l := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: frozen}, l); err != nil {
			t.Fatal(err)
		}
		if l.Labels[contract.LabelRole] != contract.RoleReplica {
			t.Errorf("the thawed old master %s should be a replica, its label says %q", frozen, l.Labels[contract.LabelRole])
		}
	})

	step("PlannedDeleteLosesNoAcknowledgedWrite", func(t *testing.T) {
		old := settled(ctx, t, c, rc)
		var acked atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		w := urlClient(ctx, t, c)
		if err := w.Set(ctx, "counter", 0, 0).Err(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := w.Incr(ctx, "counter").Err(); err == nil {
					acked.Add(1)
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
		time.Sleep(time.Second)
		t0 := time.Now()
		if err := c.Client.Delete(ctx, haPod(old)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 90*time.Second, "a new master takes writes", func() error {
			if m := master(ctx, c); m == "" || m == old {
				return fmt.Errorf("the master is still %q", m)
			}
			return rc.Set(ctx, "after-delete", "1", 0).Err()
		})
		t.Logf("planned deletion of the master: writes through the url succeeded again %.1fs after it", time.Since(t0).Seconds())
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		got, err := rc.Get(ctx, "counter").Int64()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("planned deletion: %d INCRs acknowledged, counter %d on the new master", acked.Load(), got)
		if got < acked.Load() {
			t.Errorf("%d acknowledged writes lost", acked.Load()-got)
		}
		settled(ctx, t, c, rc)
	})

	// ha_gateway_test.go
	gatewayFailoverSteps(ctx, c, rc, step)
	apiKeyReplicaDownStep(ctx, c, rc, step)

	// ha_ops_test.go
	step("NetworkCutMasterReplacedAndRejoins", func(t *testing.T) { haNetworkCut(ctx, t, c, rc) })
	step("RollingMemoryChangeLosesNoAcknowledgedWrite", func(t *testing.T) { haRollingChange(ctx, t, c, rc, inst) })
	step("DrainMasterNodeLosesNoAcknowledgedWrite", func(t *testing.T) { haDrain(ctx, t, c, rc) })
	step("ScaleDownToOneAndBackKeepsEveryKey", func(t *testing.T) { haScaleDownAndUp(ctx, t, c, rc, inst) })
}

// setSpec sets spec.<field> of an instance manifest.
func setSpec(o interface {
	UnstructuredContent() map[string]any
}, field string, v any) error {
	spec, ok := o.UnstructuredContent()["spec"].(map[string]any)
	if !ok {
		return fmt.Errorf("manifest has no spec")
	}
	spec[field] = v
	return nil
}

func haPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: teamHA, Name: name}}
}

// urlClient connects with the connection Secret's url, dialling its host as
// a pod would: through the cluster's DNS and the Service's ClusterIP.
func urlClient(ctx context.Context, t *testing.T, c *local.Cluster) *redis.Client {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: "cache-redis"}, s); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(string(s.Data[contract.KeyURL]))
	if err != nil {
		t.Fatal(err)
	}
	opt.Dialer, opt.MaxRetries = c.DialContext, -1
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	rc := redis.NewClient(opt)
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// master is the pod labelled master, "" unless exactly one is.
func master(ctx context.Context, c *local.Cluster) string {
	l := &corev1.PodList{}
	if err := c.Client.List(ctx, l, client.InNamespace(teamHA), client.MatchingLabels(contract.MasterSelector(name))); err != nil || len(l.Items) != 1 {
		return ""
	}
	return l.Items[0].Name
}

// settled waits until one pod is labelled master and two replica, status
// names the master, writes work through the url, and every Sentinel knows
// both replicas (Sentinel promotes none it has not learnt of yet); it writes
// 100 keys once and returns the master.
func settled(ctx context.Context, t *testing.T, c *local.Cluster, rc *redis.Client) string {
	t.Helper()
	m := ""
	testenv.Eventually(t, 3*time.Minute, "one master, two replicas, Sentinels aware of both", func() error {
		l := &corev1.PodList{}
		if err := c.Client.List(ctx, l, client.InNamespace(teamHA), client.MatchingLabels(contract.PodSelector(name))); err != nil {
			return err
		}
		roles := map[string]int{}
		for _, p := range l.Items {
			roles[p.Labels[contract.LabelRole]]++
		}
		if roles[contract.RoleMaster] != 1 || roles[contract.RoleReplica] != 2 {
			return fmt.Errorf("roles %v", roles)
		}
		m = master(ctx, c)
		xr, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamHA, name)
		if err != nil {
			return err
		}
		if got, _, _ := unstructured.NestedString(xr.Object, "status", "master"); got != m {
			return fmt.Errorf("status.master %q, labelled master %q", got, m)
		}
		if err := rc.Set(ctx, "probe", "1", 0).Err(); err != nil {
			return err
		}
		// Every Sentinel, not only the master's: one still finishing a
		// failover (or in TILT) when the next step freezes or cuts a pod
		// names an old master for good, and no majority forms.
		for _, pod := range l.Items {
			p, err := c.Pod(teamHA, pod.Name)
			if err != nil {
				return err
			}
			out, err := p.Exec(ctx, "sentinel", "sh", "-c", `redis-cli -p 26379 sentinel get-master-addr-by-name redishttp | head -n 1; redis-cli -p 26379 sentinel master redishttp | paste - - | grep -E '^(flags|num-slaves|num-other-sentinels)'; redis-cli -p 26379 info sentinel | grep sentinel_tilt:`)
			if err != nil {
				return fmt.Errorf("Sentinel of %s: %w: %s", pod.Name, err, out)
			}
			s := strings.ReplaceAll(string(out), "\r", "")
			if !strings.HasPrefix(s, m+".") || !strings.Contains(s, "flags\tmaster\n") || !strings.Contains(s, "num-slaves\t2") || !strings.Contains(s, "num-other-sentinels\t2") || !strings.Contains(s, "sentinel_tilt:0") {
				return fmt.Errorf("Sentinel of %s (want master %s, no failover, no TILT): %q", pod.Name, m, s)
			}
		}
		return nil
	})
	if n, _ := rc.DBSize(ctx).Result(); n < 100 {
		for i := range 100 {
			if err := rc.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return m
}

// haInstance creates team-ha (pod security restricted) and returns the
// manifest of an instance with three replicas in it, not yet applied.
func haInstance(ctx context.Context, t *testing.T, c *local.Cluster) *unstructured.Unstructured {
	t.Helper()
	if err := c.EnsureNamespace(ctx, teamHA, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
		t.Fatal(err)
	}
	inst := instance(t, teamHA)
	if err := setSpec(inst, "replicas", int64(3)); err != nil {
		t.Fatal(err)
	}
	return inst
}
