package apikey

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkApiKeysReady creates REDISHTTP_BENCH_APIKEYS ApiKeys (default
// 1000) on one instance and measures, through the real kube-apiserver and
// redis-server, how fast they all turn Ready, with the provider's controllers
// at --max-reconcile-rate=REDISHTTP_BENCH_RATE (default 100). Next to it, the
// raw rate of ACL SETUSER on the same Redis, one client, as the floor of what
// Redis itself costs; then, with every user in place, what one ACL LIST (the
// provider's per-snapshot read) and one ACL GETUSER per key would cost.
func BenchmarkApiKeysReady(b *testing.B) {
	n := envInt("REDISHTTP_BENCH_APIKEYS", 1000)
	rate := envInt("REDISHTTP_BENCH_RATE", 100)
	h := startHarness(b, harnessOptions{pollInterval: time.Minute, rate: rate})
	ctx := context.Background()
	const ns = "bench"
	h.tenant(b, ns, "cache")
	// With REDISHTTP_BENCH_REPLICAS=3, the burst's instance has three Redis
	// pods (a master and two replicas), each of which needs every key.
	var pc *xpv2.ProviderConfigReference
	nodes := []*goredis.Client{h.admin}
	if replicas := envInt("REDISHTTP_BENCH_REPLICAS", 1); replicas > 1 {
		servers, _ := h.redisPods(b, ns, "cache", replicas)
		pc = &xpv2.ProviderConfigReference{Kind: v1alpha1.ProviderConfigKind, Name: "pods"}
		nodes = nil
		for _, s := range servers {
			c := goredis.NewClient(&goredis.Options{Addr: s.Addr, Password: adminPassword, Protocol: 2, DisableIdentity: true})
			b.Cleanup(func() { _ = c.Close() })
			nodes = append(nodes, c)
		}
	}
	b.Logf("%d ApiKeys on an instance with %d Redis server(s)", n, len(nodes))
	if len(nodes) > 1 {
		// The other tenant's Redis.
		nodes = append(nodes, h.admin)
	}
	resetStats := func() {
		for _, c := range nodes {
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	redisWrites := func() int {
		w := 0
		for _, c := range nodes {
			w += aclWrites(b, c)
		}
		return w
	}
	// Another tenant's key, rotated while the burst reconciles.
	const other = "other"
	h.tenant(b, other, "cache")
	h.create(b, apiKey(other, "victim", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}))
	testenv.Eventually(b, time.Minute, "victim Ready", func() error { return ready(h.get(b, other, "victim")) })

	// The anchor of the API server's own cost: the same keys created with
	// no provider running, then deleted (nothing holds them yet).
	h.stop()
	const alone = "alone"
	h.create(b, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: alone}})
	cpu := cpuTimes()
	start := time.Now()
	createKeys(b, h, alone, "k-", n, nil, nil)
	b.Logf("anchor: %d ApiKeys created in %s with no provider running; CPU: %s", n, time.Since(start).Round(time.Millisecond), cpuSince(cpu))
	if err := h.kube.DeleteAllOf(ctx, &v1alpha1.ApiKey{}, client.InNamespace(alone)); err != nil {
		b.Fatal(err)
	}
	testenv.Eventually(b, 5*time.Minute, "anchor ApiKeys gone", func() error {
		l := &v1alpha1.ApiKeyList{}
		if err := h.kube.List(ctx, l, client.InNamespace(alone)); err != nil {
			return err
		}
		if len(l.Items) > 0 {
			return fmt.Errorf("%d left", len(l.Items))
		}
		return nil
	})
	h.stop = h.startProvider(b)

	r := redis.Rules{PasswordHashes: []string{hash(KeyPrefix + "bench")}, KeyPatterns: []string{"*"}, Commands: defaultCommands}
	start = time.Now()
	for i := range n {
		if err := h.admin.Do(ctx, r.Args(fmt.Sprintf("raw-%d", i))...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	setuser := float64(n) / time.Since(start).Seconds()

	b.ResetTimer()
	var elapsed, reverify time.Duration
	for it := range b.N {
		h.requests.reset()
		resetStats()
		cpu := cpuTimes()
		start := time.Now()
		half := make(chan struct{})
		done := make(chan time.Duration, 1)
		go func() {
			createKeys(b, h, ns, fmt.Sprintf("k-%d-", it), n, half, pc)
			done <- time.Since(start)
		}()

		// Half way through the burst, another tenant rotates a key: how
		// long until the new key works?
		<-half
		was := h.secret(b, other, "victim-redis")[contract.KeyPassword]
		rotated := time.Now()
		h.update(b, other, "victim", func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider.Rotation.Serial++ })
		testenv.Eventually(b, 5*time.Minute, "victim rotated", func() error {
			s := h.secret(b, other, "victim-redis")
			if s[contract.KeyPassword] == was {
				return fmt.Errorf("not rotated yet")
			}
			return h.authenticates(s[contract.KeyUsername], s[contract.KeyPassword])
		})
		b.Logf("another tenant's rotation, half way through the burst: the new key works after %s", time.Since(rotated).Round(time.Millisecond))
		created := <-done

		prefix := fmt.Sprintf("k-%d-", it)
		testenv.Eventually(b, 10*time.Minute, "every ApiKey Ready", func() error {
			l := &v1alpha1.ApiKeyList{}
			if err := h.kube.List(ctx, l, client.InNamespace(ns)); err != nil {
				return err
			}
			readyN := 0
			for _, ak := range l.Items {
				if len(ak.Name) > len(prefix) && ak.Name[:len(prefix)] == prefix && ak.GetCondition(xpv2.TypeReady).Status == corev1.ConditionTrue {
					readyN++
				}
			}
			if readyN < n {
				return fmt.Errorf("%d of %d Ready", readyN, n)
			}
			return nil
		})
		elapsed += time.Since(start)
		b.Logf("%d ApiKeys created in %s, all Ready after %s", n, created.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		b.Logf("CPU to Ready: %s", cpuSince(cpu))
		// Writes trail Ready by a moment: let them land before counting.
		time.Sleep(time.Second)
		b.Logf("API requests per key: %s", h.requests.perKey(n))
		w := h.requests.writes()
		b.Logf("to Ready: %.2f API requests per key, of which %.2f writes %v; %.2f Redis writes per key", float64(h.requests.all())/float64(n), float64(total(w))/float64(n), w, float64(redisWrites())/float64(n))

		// A restarted provider re-verifies every key.
		h.stop()
		h.requests.reset()
		h.verified.reset()
		resetStats()
		start = time.Now()
		h.stop = h.startProvider(b)
		all := n*(it+1) + 1 // and the other tenant's key
		testenv.Eventually(b, 10*time.Minute, "every ApiKey re-verified", func() error {
			if v := h.verified.count(); v < all {
				return fmt.Errorf("%d of %d re-verified", v, all)
			}
			return nil
		})
		reverify += time.Since(start)
		warnings := map[string]int{}
		el := &corev1.EventList{}
		if err := h.kube.List(ctx, el, client.InNamespace(ns)); err == nil {
			for _, e := range el.Items {
				if e.Type == corev1.EventTypeWarning && e.LastTimestamp.After(start) {
					warnings[e.Reason+": "+e.Message] += int(e.Count)
				}
			}
		}
		b.Logf("warnings since the restart: %v", warnings)
		w = h.requests.writes()
		b.Logf("restart: %d ApiKeys re-verified after %s, %d API requests, %d API writes for keys %v (all writes %v), %d Redis writes, %d Secret reads", all, time.Since(start).Round(time.Millisecond), h.requests.all(), total(keyWrites(w)), keyWrites(w), w, redisWrites(), h.requests.count("GET secrets"))
	}
	b.StopTimer()

	// What observing costs Redis at this size: the provider's one ACL LIST
	// per snapshot, against one ACL GETUSER per key.
	const lists = 20
	start = time.Now()
	for range lists {
		if err := h.admin.Do(ctx, "ACL", "LIST").Err(); err != nil {
			b.Fatal(err)
		}
	}
	aclList := time.Since(start) / lists
	const gets = 500
	start = time.Now()
	for i := range gets {
		if err := h.admin.Do(ctx, "ACL", "GETUSER", fmt.Sprintf("raw-%d", i%n)).Err(); err != nil {
			b.Fatal(err)
		}
	}
	getuser := float64(gets) / time.Since(start).Seconds()

	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(reverify.Seconds()/float64(b.N), "reverify-s")
	b.ReportMetric(setuser, "setuser/s")
	b.ReportMetric(getuser, "getuser/s")
	b.ReportMetric(float64(aclList.Microseconds())/1000, "acllist-ms")
}

// createKeys creates n ApiKeys named prefix<i> in namespace ns, eight at a
// time, as a platform's tooling would, and closes half (unless nil) once half
// of them exist.
func createKeys(t testing.TB, h *harness, ns, prefix string, n int, half chan<- struct{}, pc *xpv2.ProviderConfigReference) {
	var wg sync.WaitGroup
	var made atomic.Int64
	names := make(chan string)
	for range 8 {
		wg.Go(func() {
			for name := range names {
				ak := apiKey(ns, name, v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}})
				ak.Spec.ProviderConfigReference = pc
				h.create(t, ak)
				if made.Add(1) == int64(n/2) && half != nil {
					close(half)
				}
			}
		})
	}
	for i := range n {
		names <- fmt.Sprintf("%s%d", prefix, i)
	}
	close(names)
	wg.Wait()
}
