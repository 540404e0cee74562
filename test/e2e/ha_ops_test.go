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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// Steps of TestHighAvailability that change the running instance: a network
// cut of the master, a rolling change and a node drain under a writer,
// scaling down and up.
// Each starts and ends with the instance settled at three replicas.

// haNetworkCut cuts the master pod's network: the cut-off master refuses
// writes (min-replicas-to-write), a replica is promoted and takes writes
// through the url, and once the network is back the old master follows the
// new one as a replica, with the writes made meanwhile.
func haNetworkCut(ctx context.Context, t *testing.T, c *local.Cluster, rc *redis.Client) {
	old := settled(ctx, t, c, rc)
	p, err := c.Pod(teamHA, old)
	if err != nil {
		t.Fatal(err)
	}
	masters := watchMasters(ctx, c)
	t0 := time.Now()
	if err := p.CutNetwork(); err != nil {
		t.Fatal(err)
	}
	cut := true
	defer func() {
		if cut {
			_ = p.RestoreNetwork()
		}
	}()

	// Both are polled at once, each time recorded when first seen: Sentinel
	// promotes after down-after-milliseconds (5 s), the old master refuses
	// after min-replicas-max-lag (10 s).
	var refused, promoted time.Duration
	testenv.Eventually(t, 2*time.Minute, "the cut-off master refuses writes and a replica takes writes through the url", func() error {
		if promoted == 0 {
			if m := master(ctx, c); m != "" && m != old && rc.Set(ctx, "cut:after", "1", 0).Err() == nil {
				promoted = time.Since(t0)
			}
		}
		if refused == 0 {
			// Through the pod's loopback, as a client beside it would: the
			// only way to reach a pod whose network is cut.
			out, _ := p.Exec(ctx, redisContainer, "sh", "-c", "redis-cli -h 127.0.0.1 set cut:probe 1")
			if s := string(out); strings.Contains(s, "NOREPLICAS") || strings.Contains(s, "READONLY") {
				refused = time.Since(t0)
			}
		}
		if promoted == 0 || refused == 0 {
			return fmt.Errorf("new master taking writes after %s, old master refusing writes after %s (0: not yet)", promoted, refused)
		}
		return nil
	})
	t.Logf("network cut of master %s: writes through the url on the new master after %.1fs; the cut-off master refused writes after %.1fs", old, promoted.Seconds(), refused.Seconds())

	if err := p.RestoreNetwork(); err != nil {
		t.Fatal(err)
	}
	cut = false
	t1 := time.Now()
	settled(ctx, t, c, rc)
	testenv.Eventually(t, 2*time.Minute, "the old master follows the new one with the writes made during the cut", func() error {
		out, err := p.Exec(ctx, redisContainer, "sh", "-c", "redis-cli -h 127.0.0.1 info replication | grep -E '^(role|master_link_status):'; redis-cli -h 127.0.0.1 get cut:after")
		s := strings.ReplaceAll(string(out), "\r", "")
		if err != nil || !strings.Contains(s, "role:slave") || !strings.Contains(s, "master_link_status:up") || !strings.HasSuffix(strings.TrimSpace(s), "\n1") {
			return fmt.Errorf("%w: %q", err, s)
		}
		return nil
	})
	l := &corev1.Pod{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: old}, l); err != nil {
		t.Fatal(err)
	}
	if l.Labels[contract.LabelRole] != contract.RoleReplica {
		t.Errorf("the old master %s should be labelled replica after the cut healed, its label says %q", old, l.Labels[contract.LabelRole])
	}
	t.Logf("network cut healed: %s a replica of the new master after %.1fs", old, time.Since(t1).Seconds())
	if most := masters(); most > 1 {
		t.Errorf("%d pods were labelled master at once during the cut", most)
	}
}

// haRollingChange changes spec.memory under a writer counting acknowledged
// INCRs through the url: every pod rolls (the master handed over before it
// stops) and no acknowledged write is lost.
func haRollingChange(ctx context.Context, t *testing.T, c *local.Cluster, rc *redis.Client, inst *unstructured.Unstructured) {
	old := settled(ctx, t, c, rc)
	before := runningMaxmemory(ctx, t, c, old)
	sts := &appsv1.StatefulSet{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: contract.StatefulSetName(name)}, sts); err != nil {
		t.Fatal(err)
	}
	rev := sts.Status.UpdateRevision

	w := startIncrWriter(ctx, t, c, "roll:counter")
	time.Sleep(time.Second)
	t0 := time.Now()
	if err := setSpec(inst, "memory", "320Mi"); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, inst); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Minute, "every pod rolled to the new template", func() error {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: contract.StatefulSetName(name)}, sts); err != nil {
			return err
		}
		s := sts.Status
		if s.UpdateRevision == rev || s.CurrentRevision != s.UpdateRevision || s.UpdatedReplicas != 3 || s.ReadyReplicas != 3 {
			return fmt.Errorf("revision %s (was %s), current %s, %d updated, %d ready", s.UpdateRevision, rev, s.CurrentRevision, s.UpdatedReplicas, s.ReadyReplicas)
		}
		return nil
	})
	m := settled(ctx, t, c, rc)
	rolled := time.Since(t0)
	acked, got, longest := w.stop(ctx, t, rc)
	t.Logf("rolling memory change: every pod rolled in %.1fs; %d INCRs acknowledged, counter %d on the new master %s; longest pause between acknowledged writes %.1fs", rolled.Seconds(), acked, got, m, longest.Seconds())
	if got < acked {
		t.Errorf("%d acknowledged writes lost in the roll", acked-got)
	}
	if after := runningMaxmemory(ctx, t, c, m); after == before {
		t.Errorf("maxmemory is still %s after the roll to 320Mi", after)
	}
}

// haScaleDownAndUp scales the instance 3 -> 1 -> 3: the one pod left has
// every key (wherever the master was), the keys written while it was alone
// survive the way back to three pods (the pods that come back have older
// data and must not win the election) and reach every replica.
func haScaleDownAndUp(ctx context.Context, t *testing.T, c *local.Cluster, rc *redis.Client, inst *unstructured.Unstructured) {
	m := settled(ctx, t, c, rc)
	write := func(prefix string, n int) {
		t.Helper()
		pipe := rc.Pipeline()
		for i := range n {
			pipe.Set(ctx, fmt.Sprintf("%s:%d", prefix, i), i, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	haveAll := func(prefix string, n int) error {
		keys := make([]string, n)
		for i := range n {
			keys[i] = fmt.Sprintf("%s:%d", prefix, i)
		}
		vals, err := rc.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		for i, v := range vals {
			if v != fmt.Sprint(i) {
				return fmt.Errorf("%s is %v", keys[i], v)
			}
		}
		return nil
	}
	write("three", 300)

	t0 := time.Now()
	if err := setSpec(inst, "replicas", int64(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, inst); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 6*time.Minute, "one pod left, taking writes with every key", func() error {
		l := &corev1.PodList{}
		if err := c.Client.List(ctx, l, client.InNamespace(teamHA), client.MatchingLabels(contract.PodSelector(name))); err != nil {
			return err
		}
		if len(l.Items) != 1 {
			return fmt.Errorf("%d pods", len(l.Items))
		}
		sts := &appsv1.StatefulSet{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: contract.StatefulSetName(name)}, sts); err != nil {
			return err
		}
		if s := sts.Status; s.CurrentRevision != s.UpdateRevision || s.ReadyReplicas != 1 {
			return fmt.Errorf("StatefulSet: current %s, update %s, %d ready", s.CurrentRevision, s.UpdateRevision, s.ReadyReplicas)
		}
		if err := rc.Set(ctx, "one:probe", "1", 0).Err(); err != nil {
			return err
		}
		return haveAll("three", 300)
	})
	t.Logf("scaled 3 -> 1 (the master was %s) in %.1fs with every key", m, time.Since(t0).Seconds())
	write("one", 300)

	t1 := time.Now()
	if err := setSpec(inst, "replicas", int64(3)); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, inst); err != nil {
		t.Fatal(err)
	}
	m = settled(ctx, t, c, rc)
	for _, prefix := range []string{"three", "one"} {
		if err := haveAll(prefix, 300); err != nil {
			t.Errorf("after scaling 1 -> 3 the master %s lost keys written at %s replicas: %v", m, prefix, err)
		}
	}
	for i := range 3 {
		pod := fmt.Sprintf("%s-%d", contract.StatefulSetName(name), i)
		if pod == m {
			continue
		}
		p, err := c.Pod(teamHA, pod)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "replica "+pod+" has the keys written at one replica", func() error {
			out, err := p.Exec(ctx, redisContainer, "sh", "-c", "redis-cli -h 127.0.0.1 get one:299")
			if s := strings.TrimSpace(string(out)); err != nil || s != "299" {
				return fmt.Errorf("GET one:299 on %s: %q: %w", pod, s, err)
			}
			return nil
		})
	}
	t.Logf("scaled 1 -> 3 in %.1fs: master %s, every key on the master and the replicas", time.Since(t1).Seconds(), m)
}

// haDrain drains the master's node under a writer counting acknowledged
// INCRs, as `kubectl drain` does (the Eviction API, the PodDisruptionBudget
// honoured): the master is handed over before its pod stops, the pod comes
// back on another node as a replica, no acknowledged write is lost and no
// two pods are ever labelled master.
func haDrain(ctx context.Context, t *testing.T, c *local.Cluster, rc *redis.Client) {
	old := settled(ctx, t, c, rc)
	p := &corev1.Pod{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: old}, p); err != nil {
		t.Fatal(err)
	}
	node := p.Spec.NodeName
	masters := watchMasters(ctx, c)
	w := startIncrWriter(ctx, t, c, "drain:counter")
	t0 := time.Now()
	if err := c.Drain(ctx, node, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	drained := time.Since(t0)
	defer func() {
		if err := c.Uncordon(ctx, node); err != nil {
			t.Error(err)
		}
	}()
	m := settled(ctx, t, c, rc)
	acked, got, longest := w.stop(ctx, t, rc)
	most := masters()
	t.Logf("drain of node %s (master %s): drained in %.1fs, master now %s; %d INCRs acknowledged, counter %d; longest pause between acknowledged writes %.1fs", node, old, drained.Seconds(), m, acked, got, longest.Seconds())
	if got < acked {
		t.Errorf("%d acknowledged writes lost in the drain", acked-got)
	}
	if m == old {
		t.Errorf("the master %s should have been handed to another pod when its node was drained", old)
	}
	if most > 1 {
		t.Errorf("%d pods were labelled master at once during the drain", most)
	}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: old}, p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName == node {
		t.Errorf("pod %s came back on the drained node %s", old, node)
	}
}

// An incrWriter INCRs one key through the url as fast as it can and counts
// the acknowledged INCRs and the longest pause between two of them.
type incrWriter struct {
	key     string
	acked   atomic.Int64
	longest time.Duration
	done    chan struct{}
	wg      sync.WaitGroup
}

func startIncrWriter(ctx context.Context, t *testing.T, c *local.Cluster, key string) *incrWriter {
	t.Helper()
	rc := urlClient(ctx, t, c)
	if err := rc.Set(ctx, key, 0, 0).Err(); err != nil {
		t.Fatal(err)
	}
	w := &incrWriter{key: key, done: make(chan struct{})}
	w.wg.Go(func() {
		last := time.Now()
		for {
			select {
			case <-w.done:
				return
			default:
			}
			if err := rc.Incr(ctx, key).Err(); err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			w.acked.Add(1)
			if d := time.Since(last); d > w.longest {
				w.longest = d
			}
			last = time.Now()
		}
	})
	time.Sleep(time.Second)
	return w
}

// stop writes a second more, stops and reads the counter through rc.
func (w *incrWriter) stop(ctx context.Context, t *testing.T, rc *redis.Client) (acked, got int64, longest time.Duration) {
	t.Helper()
	time.Sleep(time.Second)
	close(w.done)
	w.wg.Wait()
	got, err := rc.Get(ctx, w.key).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return w.acked.Load(), got, w.longest
}

// watchMasters polls the instance's pods until the returned function is
// called, which returns the most pods it ever saw labelled master at once.
func watchMasters(ctx context.Context, c *local.Cluster) func() int {
	done := make(chan struct{})
	var most atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			l := &corev1.PodList{}
			if err := c.Client.List(ctx, l, client.InNamespace(teamHA), client.MatchingLabels(contract.MasterSelector(name))); err == nil {
				if n := int64(len(l.Items)); n > most.Load() {
					most.Store(n)
				}
			}
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	return func() int {
		close(done)
		wg.Wait()
		return int(most.Load())
	}
}

const redisContainer = "redis"

// runningMaxmemory is what the pod's Redis runs with.
func runningMaxmemory(ctx context.Context, t *testing.T, c *local.Cluster, pod string) string {
	t.Helper()
	p, err := c.Pod(teamHA, pod)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Exec(ctx, redisContainer, "sh", "-c", "redis-cli -h 127.0.0.1 config get maxmemory | tail -n 1")
	if err != nil {
		t.Fatalf("cannot read maxmemory on %s: %v: %s", pod, err, out)
	}
	return strings.TrimSpace(string(out))
}
