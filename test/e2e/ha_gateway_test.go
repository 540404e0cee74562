//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// pipelineREST posts cmds to the gateway's /pipeline with token and returns
// the status and each command's reply.
func pipelineREST(ctx context.Context, url, token string, cmds ...[]string) (int, []map[string]any, error) {
	var out []map[string]any
	status, err := postREST(ctx, url+"/pipeline", token, cmds, &out)
	return status, out, err
}

// A write is one INCR of the HTTP writer, as its client saw it.
type write struct {
	at time.Time
	// n is the counter INCR answered, 0 when the request failed; durable
	// when WAIT 1 said a replica has it.
	n       int64
	durable bool
	failure string
}

// httpWriter INCRs key through the gateway, one request at a time, each
// followed by WAIT 1 in the same pipeline (the README's way to know a write
// survives a failover), until stopped.
type httpWriter struct {
	mu     sync.Mutex
	writes []write
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startHTTPWriter(ctx context.Context, url, token, key string) *httpWriter {
	w := &httpWriter{stop: make(chan struct{})}
	w.wg.Go(func() {
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			status, out, err := pipelineREST(rctx, url, token, []string{"INCR", key}, []string{"WAIT", "1", "1000"})
			cancel()
			wr := write{at: time.Now()}
			switch {
			case err != nil:
				wr.failure = err.Error()
			case status != http.StatusOK || len(out) != 2:
				wr.failure = fmt.Sprintf("status %d %v", status, out)
			default:
				n, ok := out[0]["result"].(float64)
				if !ok {
					wr.failure = fmt.Sprintf("INCR answered %v", out[0])
					break
				}
				wr.n = int64(n)
				acks, _ := out[1]["result"].(float64)
				wr.durable = acks >= 1
			}
			w.mu.Lock()
			w.writes = append(w.writes, wr)
			w.mu.Unlock()
			if wr.failure != "" {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	return w
}

func (w *httpWriter) Stop() {
	close(w.stop)
	w.wg.Wait()
}

// succeededAfter reports whether a write succeeded after t.
func (w *httpWriter) succeededAfter(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.writes) - 1; i >= 0 && w.writes[i].at.After(t); i-- {
		if w.writes[i].failure == "" {
			return true
		}
	}
	return false
}

// A writeSummary is what the writer's client saw of a failover.
type writeSummary struct {
	acked, durable, failed int
	// gap is from the first failure to the first success after it.
	gap                   time.Duration
	firstFail, recovered  time.Time
	lostDurable, lostAcks int64
	failures              map[string]int
	last                  int64
}

func (w *httpWriter) summary() writeSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := writeSummary{failures: map[string]int{}}
	var prev, maxDurable int64
	for _, wr := range w.writes {
		if wr.failure != "" {
			s.failed++
			if s.firstFail.IsZero() {
				s.firstFail = wr.at
			}
			f := wr.failure
			if len(f) > 80 {
				f = f[:80]
			}
			s.failures[f]++
			continue
		}
		if !s.firstFail.IsZero() && s.recovered.IsZero() {
			s.recovered = wr.at
			s.gap = wr.at.Sub(s.firstFail)
		}
		s.acked++
		if wr.n <= prev {
			// The counter went back: the INCRs answered prev-wr.n+1
			// before are gone.
			s.lostAcks += prev - wr.n + 1
		}
		if wr.n <= maxDurable {
			s.lostDurable += maxDurable - wr.n + 1
		}
		if wr.durable {
			s.durable++
			maxDurable = max(maxDurable, wr.n)
		}
		prev = wr.n
		s.last = wr.n
	}
	return s
}

// gatewayFailoverSteps: an HTTP client writing through the gateway while
// the master fails over succeeds again once a replica is promoted, and no
// write a replica acknowledged (WAIT 1) is lost: when the master's
// redis-server is killed (-9), and when the master hands over (its preStop
// hook, as a planned deletion or a scale-down runs it) while its pod stays
// up: the old master follows the new one as a replica, the gateway's pooled
// connections still lead to it and it answers writes READONLY.
func gatewayFailoverSteps(ctx context.Context, c *local.Cluster, rc *redis.Client, step func(string, func(*testing.T))) {
	through := func(t *testing.T, what, key string, inject func(old string) error) {
		url, token, err := c.RESTEndpoint(ctx, teamHA, "cache-redis", name)
		if err != nil || url == "" {
			t.Fatalf("the instance's REST endpoint: %q, %v", url, err)
		}
		old := settled(ctx, t, c, rc)
		w := startHTTPWriter(ctx, url, token, key)
		stopped := false
		defer func() {
			if !stopped {
				w.Stop()
			}
		}()
		testenv.Eventually(t, 30*time.Second, "the writer succeeds through the gateway", func() error {
			if !w.succeededAfter(time.Now().Add(-time.Second)) {
				return errors.New("no write succeeded in the last second")
			}
			return nil
		})
		fault := time.Now()
		if err := inject(old); err != nil {
			t.Fatal(err)
		}
		var promoted time.Time
		testenv.Eventually(t, 2*time.Minute, "a replica is labelled master", func() error {
			if m := master(ctx, c); m == "" || m == old {
				return fmt.Errorf("the master is %q", m)
			}
			promoted = time.Now()
			return nil
		})
		testenv.Eventually(t, time.Minute, "a write through the gateway succeeds after the promotion", func() error {
			if !w.succeededAfter(promoted) {
				return errors.New("no write succeeded since")
			}
			return nil
		})
		w.Stop()
		stopped = true
		s := w.summary()
		if s.recovered.IsZero() {
			t.Logf("gateway through %s: %d writes acknowledged (%d by a replica too), none failed", what, s.acked, s.durable)
		} else {
			t.Logf("gateway through %s: %d writes acknowledged (%d by a replica too), %d failed; client-side gap %.1fs (success again %.1fs after the fault, %.1fs after the test saw the new master's label); failures: %v",
				what, s.acked, s.durable, s.failed, s.gap.Seconds(), s.recovered.Sub(fault).Seconds(), s.recovered.Sub(promoted).Seconds(), s.failures)
		}
		t.Logf("gateway through %s: acknowledged INCRs lost: %d (%d of them acknowledged by a replica)", what, s.lostAcks, s.lostDurable)
		if s.lostDurable > 0 {
			t.Errorf("%d INCRs acknowledged by a replica (WAIT 1) lost in the failover", s.lostDurable)
		}
		if got, err := rc.Get(ctx, key).Int64(); err != nil || got < s.last {
			t.Errorf("the counter on the new master: %d (%v), the last acknowledged INCR answered %d", got, err, s.last)
		}
		settled(ctx, t, c, rc)
	}
	step("GatewayServesThroughKilledMaster", func(t *testing.T) {
		through(t, "kill -9 of the master", "gw:killed", func(old string) error {
			p, err := c.Pod(teamHA, old)
			if err != nil {
				return err
			}
			return p.Kill("redis")
		})
	})
	step("GatewayServesThroughHandover", func(t *testing.T) {
		through(t, "a handover (the master's preStop hook, its pod kept)", "gw:handover", func(old string) error {
			spec := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: old}, spec); err != nil {
				return err
			}
			p, err := c.Pod(teamHA, old)
			if err != nil {
				return err
			}
			for _, ctr := range spec.Spec.Containers {
				if ctr.Name == "redis" && ctr.Lifecycle != nil && ctr.Lifecycle.PreStop != nil && ctr.Lifecycle.PreStop.Exec != nil {
					// The hook returns once this Redis follows the new
					// master: run it in the background.
					go func() { _, _ = p.Exec(ctx, "redis", ctr.Lifecycle.PreStop.Exec.Command...) }()
					return nil
				}
			}
			return errors.New("the redis container has no preStop exec hook")
		})
	})
}

// apiKeyReplicaDownStep: ApiKeys created, rotated and deleted while a
// replica is frozen reach it once it is back; after a failover every key
// works on the new master at once, with its own credentials.
func apiKeyReplicaDownStep(ctx context.Context, c *local.Cluster, rc *redis.Client, step func(string, func(*testing.T))) {
	type creds struct{ user, password string }
	credsOf := func(secret string) (creds, error) {
		s := &corev1.Secret{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: secret}, s); err != nil {
			return creds{}, err
		}
		return creds{string(s.Data[contract.KeyUsername]), string(s.Data[contract.KeyPassword])}, nil
	}
	// onPod runs a command with cr on pod's Redis directly (not through a
	// Service): SET on a master, GET on a replica; nil when it worked.
	onPod := func(pod string, cr creds, write bool) error {
		p, err := c.Pod(teamHA, pod)
		if err != nil {
			return err
		}
		pc := redis.NewClient(&redis.Options{
			Addr: net.JoinHostPort(p.IP, "6379"), Username: cr.user, Password: cr.password,
			MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		})
		defer pc.Close()
		if write {
			return pc.Set(ctx, "app:ha-key", "1", 0).Err()
		}
		if err := pc.Get(ctx, "app:ha-key").Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return nil
	}
	refused := func(err error) bool { return err != nil && strings.Contains(err.Error(), "WRONGPASS") }
	apiKey := func(t *testing.T, n string) *unstructured.Unstructured {
		k := manifests(t, "examples/provider/apikey-readwrite.yaml")[0]
		k.SetName(n)
		k.SetNamespace(teamHA)
		if err := unstructured.SetNestedField(k.Object, n+"-redis", "spec", "writeConnectionSecretToRef", "name"); err != nil {
			t.Fatal(err)
		}
		return k
	}
	var live map[string]creds
	step("ApiKeysReachAReplicaThatWasDown", func(t *testing.T) {
		m := settled(ctx, t, c, rc)
		for _, n := range []string{"ha-rot", "ha-del"} {
			if err := c.Apply(ctx, apiKey(t, n)); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []string{"ha-rot", "ha-del"} {
			if err := c.WaitConditions(ctx, "redishttp.io/v1alpha1", "ApiKey", teamHA, n, 2*time.Minute, "Synced", "Ready"); err != nil {
				t.Fatal(err)
			}
		}
		oldRot, err := credsOf("ha-rot-redis")
		if err != nil {
			t.Fatal(err)
		}
		deleted, err := credsOf("ha-del-redis")
		if err != nil {
			t.Fatal(err)
		}
		replica := ""
		l := &corev1.PodList{}
		if err := c.Client.List(ctx, l, client.InNamespace(teamHA), client.MatchingLabels(contract.PodSelector(name))); err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			if p.Name != m && p.Labels[contract.LabelRole] == contract.RoleReplica {
				replica = p.Name
				break
			}
		}
		if replica == "" {
			t.Fatal("no replica pod")
		}
		// Both keys on the replica before it goes down.
		testenv.Eventually(t, time.Minute, "both keys work on "+replica, func() error {
			if err := onPod(replica, oldRot, false); err != nil {
				return err
			}
			return onPod(replica, deleted, false)
		})
		p, err := c.Pod(teamHA, replica)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Freeze(); err != nil {
			t.Fatal(err)
		}
		thawed := false
		defer func() {
			if !thawed {
				_ = p.Thaw()
			}
		}()
		// While it is frozen: a new key, a rotation without grace
		// period, a deletion.
		if err := c.Apply(ctx, apiKey(t, "ha-new")); err != nil {
			t.Fatal(err)
		}
		rot, err := c.Get(ctx, "redishttp.io/v1alpha1", "ApiKey", teamHA, "ha-rot")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Patch(ctx, rot, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"forProvider":{"rotation":{"serial":1,"gracePeriod":"0s"}}}}`))); err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Delete(ctx, apiKey(t, "ha-del")); err != nil {
			t.Fatal(err)
		}
		var newKey, newRot creds
		testenv.Eventually(t, 2*time.Minute, "the new key and the rotated key work on the master", func() error {
			var err error
			if newKey, err = credsOf("ha-new-redis"); err != nil || newKey.password == "" {
				return fmt.Errorf("ha-new's Secret: %w", err)
			}
			if newRot, err = credsOf("ha-rot-redis"); err != nil {
				return err
			}
			if newRot.password == oldRot.password {
				return errors.New("ha-rot not rotated yet")
			}
			if err := onPod(m, newKey, true); err != nil {
				return fmt.Errorf("ha-new on the master: %w", err)
			}
			return onPod(m, newRot, true)
		})
		if err := p.Thaw(); err != nil {
			t.Fatal(err)
		}
		thawed = true
		back := time.Now()
		testenv.Eventually(t, 3*time.Minute, "the changes reach "+replica, func() error {
			if err := onPod(replica, newKey, false); err != nil {
				return fmt.Errorf("the key created meanwhile: %w", err)
			}
			if err := onPod(replica, newRot, false); err != nil {
				return fmt.Errorf("the rotated key: %w", err)
			}
			if err := onPod(replica, oldRot, false); !refused(err) {
				return fmt.Errorf("the key replaced without grace period: want WRONGPASS, got %w", err)
			}
			if err := onPod(replica, deleted, false); !refused(err) {
				return fmt.Errorf("the deleted key: want WRONGPASS, got %w", err)
			}
			return nil
		})
		t.Logf("ApiKey created, rotated and deleted while %s was frozen: all reached it %.1fs after it was thawed", replica, time.Since(back).Seconds())
		live = map[string]creds{"ha-new": newKey, "ha-rot": newRot}
	})

	step("ApiKeysWorkOnTheNewMasterAtOnce", func(t *testing.T) {
		if live == nil {
			t.Skip("no keys from the step before")
		}
		old := settled(ctx, t, c, rc)
		p, err := c.Pod(teamHA, old)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Kill("redis"); err != nil {
			t.Fatal(err)
		}
		m := ""
		testenv.Eventually(t, 2*time.Minute, "a replica is labelled master", func() error {
			if m = master(ctx, c); m == "" || m == old {
				return fmt.Errorf("the master is %q", m)
			}
			return nil
		})
		// At once: one try each, right after the label moved. A read: a
		// new master may refuse writes (NOREPLICAS) until a replica
		// follows it, whoever writes.
		for n, cr := range live {
			if err := onPod(m, cr, false); err != nil {
				t.Errorf("ApiKey %s on the new master %s right after the promotion: %v", n, m, err)
			}
		}
		settled(ctx, t, c, rc)
	})
}
