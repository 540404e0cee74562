//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// The anchors' documented Sentinel defaults, for the comparison line: how
// long a master must be unreachable before Sentinel starts a failover
// (down-after-milliseconds) at each anchor's default settings.
//
//   - Redis's own sentinel.conf: "Default is 30 seconds"; failover-timeout 180000.
//   - Bitnami's redis chart (values.yaml): sentinel.downAfterMilliseconds 60000,
//     failoverTimeout 180000.
//   - spotahome/redis-operator (api/redisfailover/v1/defaults.go) and
//     OT-CONTAINER-KIT/redis-operator (SentinelConfig's kubebuilder defaults):
//     down-after-milliseconds 5000, failover-timeout 10000.
const anchorDefaults = "documented Sentinel down-after-milliseconds (failure detection alone, before any failover): Redis default 30 s, Bitnami chart 60 s, spotahome and OT-CONTAINER-KIT operators 5 s"

// benchDownAfter is the down-after-milliseconds of the measured anchor: bare
// Sentinel at the operators' default (and ours).
const benchDownAfter = 5000

// TestBenchFailover measures, on the local platform, how long writes through
// the connection Secret's url fail when the master's redis-server is killed
// (kill -9) and when the master's pod is force-deleted, E2E_BENCH_FAILOVER
// times each on one instance, and how many acknowledged writes each failover
// lost. Beside it: bare Redis Sentinel (three redis-server and three
// Sentinels on loopback, down-after-milliseconds 5000, a Sentinel-aware
// go-redis client) losing its master to kill -9, measured in the same run,
// and the anchors' documented defaults. `make bench-failover` runs it; it is
// skipped otherwise.
func TestBenchFailover(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("E2E_BENCH_FAILOVER"))
	if runs == 0 {
		t.Skip("set E2E_BENCH_FAILOVER (make bench-failover)")
	}
	// go-redis logs every refused dial of the Sentinel-aware client.
	redis.SetLogger(quiet{})
	bare := make([]failoverSample, 0, runs)
	for i := range runs {
		s := bareSentinelFailover(t, i)
		t.Logf("bare Sentinel run %d: writes again after %.2fs, %d of %d acknowledged writes lost", i+1, s.took.Seconds(), s.lost, s.acked)
		bare = append(bare, s)
	}

	c := start(t, local.ModeNamespaced)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if err := c.EnsureNamespace(ctx, teamHA, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
		t.Fatal(err)
	}
	inst := instance(t, teamHA)
	if err := setSpec(inst, "replicas", int64(3)); err != nil {
		t.Fatal(err)
	}
	if err := setSpec(inst, "http", map[string]any{"enabled": false}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitInstanceReady(ctx, teamHA, name, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	rc := urlClient(ctx, t, c)
	opt := *rc.Options()
	// Short timeouts: a write sent to a pod that vanished fails within 0.5 s
	// and the next one goes to wherever the Service routes then, so the
	// figure is the platform's, give or take half a second, not a client's
	// timeout.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	w := redis.NewClient(&opt)
	t.Cleanup(func() { _ = w.Close() })

	faults := []struct {
		name   string
		inject func(pod string) error
	}{
		{"kill -9", func(pod string) error {
			p, err := c.Pod(teamHA, pod)
			if err != nil {
				return err
			}
			return p.Kill("redis")
		}},
		{"force-delete", func(pod string) error {
			return c.Client.Delete(ctx, haPod(pod), client.GracePeriodSeconds(0))
		}},
	}
	results := map[string][]failoverSample{}
	for _, f := range faults {
		for i := range runs {
			old := settled(ctx, t, c, rc)
			replicasOnline(ctx, t, c, old)
			s := measureFailover(ctx, t, w, fmt.Sprintf("%s:%d", f.name, i), func() error { return f.inject(old) })
			if m := master(ctx, c); m == old {
				t.Errorf("%s run %d: writes succeeded again but %s is still labelled master", f.name, i+1, old)
			}
			t.Logf("%s run %d (master %s): writes through the url again after %.2fs, %d of %d acknowledged writes lost", f.name, i+1, old, s.took.Seconds(), s.lost, s.acked)
			results[f.name] = append(results[f.name], s)
		}
	}
	settled(ctx, t, c, rc)

	bp50, bmax, blost, backed := summarize(bare)
	t.Logf("BENCH failover runs=%d (local platform: one control plane, 3 kwok nodes, pods as processes; load average %s)", runs, loadAvg())
	for _, f := range faults {
		p50, mx, lost, acked := summarize(results[f.name])
		t.Logf("BENCH failover %-12s writes through the url again: p50 %.2fs max %.2fs (%.2fx / %.2fx bare Sentinel's); acknowledged writes lost %d of %d", f.name, p50.Seconds(), mx.Seconds(), p50.Seconds()/bp50.Seconds(), mx.Seconds()/bmax.Seconds(), lost, acked)
	}
	t.Logf("BENCH failover anchor: bare Sentinel (down-after-milliseconds %d), kill -9: p50 %.2fs max %.2fs; acknowledged writes lost %d of %d", benchDownAfter, bp50.Seconds(), bmax.Seconds(), blost, backed)
	t.Logf("BENCH failover anchors: %s", anchorDefaults)
}

// A failoverSample is one fault: how long after it writes succeeded again,
// and how many of the writes acknowledged around it are missing afterwards.
type failoverSample struct {
	took        time.Duration
	acked, lost int
}

func summarize(s []failoverSample) (p50, maxTook time.Duration, lost, acked int) {
	d := make([]time.Duration, 0, len(s))
	for _, x := range s {
		d = append(d, x.took)
		lost += x.lost
		acked += x.acked
	}
	slices.Sort(d)
	return d[(len(d)-1)/2], d[len(d)-1], lost, acked
}

// measureFailover writes numbered members into the set fo:<run> as fast as w
// allows and injects the fault after a second. The outage is what a client
// sees: from the fault (or, when writes still succeeded after it, as while
// a deleted pod is being stopped, the last write that did) to the first
// write, sent after one failed, that succeeded. A second later it stops,
// reads the set back and counts the acknowledged members missing from it.
func measureFailover(ctx context.Context, t *testing.T, w *redis.Client, run string, inject func() error) failoverSample {
	t.Helper()
	key := "fo:" + run
	var (
		mu                           sync.Mutex
		acked                        []int
		fault, lastOK, failed, again time.Time
		errs                         int
		lastErr                      error
		stop                         = make(chan struct{})
		back                         = make(chan struct{})
		wg                           sync.WaitGroup
	)
	wg.Go(func() {
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			sent := time.Now()
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := w.SAdd(wctx, key, seq).Err()
			cancel()
			now := time.Now()
			mu.Lock()
			if err != nil && !fault.IsZero() {
				errs++
				lastErr = err
			}
			switch {
			case err == nil:
				acked = append(acked, seq)
				if failed.IsZero() {
					lastOK = now
				} else if sent.After(failed) && again.IsZero() {
					again = now
					close(back)
				}
			case !fault.IsZero() && sent.After(fault) && failed.IsZero():
				failed = now
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	time.Sleep(time.Second)
	mu.Lock()
	fault = time.Now()
	mu.Unlock()
	if err := inject(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	select {
	case <-back:
	case <-time.After(3 * time.Minute):
		close(stop)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: writes did not fail and succeed again within 3 minutes of the fault: %d acknowledged, last at %s, %d errors since the fault (at %s), the first at %s, the last: %v",
			run, len(acked), lastOK.Format(time.StampMilli), errs, fault.Format(time.StampMilli), failed.Format(time.StampMilli), lastErr)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	var members []string
	testenv.Eventually(t, time.Minute, "the set of writes reads back", func() error {
		var err error
		members, err = w.SMembers(ctx, key).Result()
		return err
	})
	have := map[string]bool{}
	for _, m := range members {
		have[m] = true
	}
	from := fault
	if lastOK.After(from) {
		from = lastOK
	}
	s := failoverSample{took: again.Sub(from), acked: len(acked)}
	for _, a := range acked {
		if !have[strconv.Itoa(a)] {
			s.lost++
		}
	}
	return s
}

// bareSentinelFailover starts three redis-server (a master, two replicas)
// and three Sentinels on loopback, waits until every Sentinel knows both
// replicas and the other Sentinels, and measures one kill -9 of the master
// with a Sentinel-aware client.
func bareSentinelFailover(t *testing.T, run int) failoverSample {
	t.Helper()
	ctx := context.Background()
	m := testenv.StartRedis(t, "--appendonly", "no")
	var nodes []*testenv.Redis
	nodes = append(nodes, m)
	for range 2 {
		nodes = append(nodes, testenv.StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(m.Port)))
	}
	var sentinels []string
	var procs []*testenv.Redis
	for range 3 {
		conf := filepath.Join(t.TempDir(), "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor bench 127.0.0.1 %d 2\nsentinel down-after-milliseconds bench %d\nsentinel failover-timeout bench 10000\n", m.Port, benchDownAfter)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s := testenv.StartRedis(t, conf, "--sentinel")
		sentinels = append(sentinels, s.Addr)
		procs = append(procs, s)
	}
	defer func() {
		for _, p := range append(procs, nodes...) {
			p.Stop()
		}
	}()
	testenv.Eventually(t, time.Minute, "every Sentinel knows two replicas and two other Sentinels", func() error {
		for _, a := range sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: a})
			info, err := sc.Master(ctx, "bench").Result()
			_ = sc.Close()
			if err != nil {
				return err
			}
			if info["num-slaves"] != "2" || info["num-other-sentinels"] != "2" {
				return fmt.Errorf("Sentinel %s: %s replicas, %s other Sentinels", a, info["num-slaves"], info["num-other-sentinels"])
			}
		}
		return nil
	})
	// Sentinel promotes a replica that has not finished its first sync as
	// readily as one that has: wait until both are online.
	mc := redis.NewClient(&redis.Options{Addr: m.Addr})
	defer mc.Close()
	testenv.Eventually(t, time.Minute, "both replicas online", func() error {
		info, err := mc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if n := strings.Count(info, "state=online"); n != 2 {
			return fmt.Errorf("%d replicas online", n)
		}
		return nil
	})
	w := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "bench", SentinelAddrs: sentinels, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	defer w.Close()
	return measureFailover(ctx, t, w, fmt.Sprintf("bare:%d", run), func() error {
		m.Stop()
		return nil
	})
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// replicasOnline waits until the master pod's Redis has both replicas
// online (Sentinel would promote one that never synced).
func replicasOnline(ctx context.Context, t *testing.T, c *local.Cluster, master string) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, "both replicas online at the master", func() error {
		p, err := c.Pod(teamHA, master)
		if err != nil {
			return err
		}
		out, err := p.Exec(ctx, "redis", "sh", "-c", "redis-cli -h 127.0.0.1 info replication")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if n := strings.Count(string(out), "state=online"); n != 2 {
			return fmt.Errorf("%d replicas online", n)
		}
		return nil
	})
}

// loadAvg is the machine's one-minute load average, for the record.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(b) == 0 {
		return "?"
	}
	f := string(b)
	for i, r := range f {
		if r == ' ' {
			return f[:i]
		}
	}
	return f
}
