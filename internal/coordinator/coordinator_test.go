package coordinator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

const password = "coordinator-test-password"

// fakeKube holds pods' role labels in memory: the coordinator's Kubernetes
// side is three calls; what this test proves is its dealings with real
// redis-server and Sentinel processes.
type fakeKube struct {
	mu          sync.Mutex
	have, want  int
	roles       map[int]string
	multiMaster bool // ever two pods labelled master at once
}

func (k *fakeKube) Replicas(context.Context) (int, int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.have, k.want, nil
}

func (k *fakeKube) Role(_ context.Context, i int) (string, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.roles[i], i < k.have, nil
}

func (k *fakeKube) SetRole(_ context.Context, i int, role string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.roles[i] = role
	n := 0
	for _, r := range k.roles {
		if r == contract.RoleMaster {
			n++
		}
	}
	k.multiMaster = k.multiMaster || n > 1
	return nil
}

func (k *fakeKube) labels() map[int]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[int]string{}
	for i, r := range k.roles {
		if r != "" {
			out[i] = r
		}
	}
	return out
}

func (k *fakeKube) master() int {
	for i, r := range k.labels() {
		if r == contract.RoleMaster {
			return i
		}
	}
	return -1
}

// pods are three "pods" on loopback: a Redis started held (as internal/fn
// starts it) and a Sentinel configured as internal/fn configures it, each on
// its own port, and a coordinator per pod.
type pods struct {
	redis, sentinel []*testenv.Redis
	// sentinelConf are the sentinel.conf files and what each held at start.
	sentinelConf, sentinelBody []string
	kube                       *fakeKube
}

func startPods(t *testing.T, n int) *pods {
	t.Helper()
	p := &pods{kube: &fakeKube{have: n, want: n, roles: map[int]string{}}}
	for i := range n {
		p.redis = append(p.redis, testenv.StartRedis(t, "--requirepass", password, "--masterauth", password,
			"--replicaof", "127.0.0.1", "1", "--replica-announce-ip", "127.0.0.1",
			"--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"))
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\nsentinel announce-ip 127.0.0.1\nsentinel myid %040d\nrequirepass %s\nsentinel sentinel-pass %s\n", i+1, password, password)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		p.sentinel = append(p.sentinel, testenv.StartRedis(t, conf, "--sentinel"))
		p.sentinelConf, p.sentinelBody = append(p.sentinelConf, conf), append(p.sentinelBody, body)
	}
	// Runs before the servers' directories go.
	t.Cleanup(func() {
		if t.Failed() {
			for i, s := range p.sentinel {
				t.Logf("Sentinel %d's log:\n%s", i, s.Log())
			}
		}
	})
	return p
}

// run starts every pod's coordinator until the test ends.
func (p *pods) run(t *testing.T) {
	t.Helper()
	all := make([]int, len(p.redis))
	for i := range all {
		all[i] = i
	}
	p.runSome(t, func(*Options) {}, all...)
}

// runSome starts the coordinators of the pods which, with options set by
// with, until the test ends.
func (p *pods) runSome(t *testing.T, with func(*Options), which ...int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, i := range which {
		o := Options{
			Self:            i,
			Addr:            func(j int) string { return p.redis[j].Addr },
			SentinelAddr:    func(j int) string { return p.sentinel[j].Addr },
			LocalRedis:      p.redis[i].Addr,
			LocalSentinel:   p.sentinel[i].Addr,
			Password:        password,
			DownAfter:       2 * time.Second,
			FailoverTimeout: 10 * time.Second,
		}
		with(&o)
		c := New(o, p.kube, testr.New(t).WithValues("pod", i))
		wg.Go(func() { c.Run(ctx, 200*time.Millisecond) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func (p *pods) client(t *testing.T, i int) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: p.redis[i].Addr, Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// settled waits for one labelled master whose Redis is master, every other
// pod labelled replica, and returns the master.
func (p *pods) settled(t *testing.T, what string) int {
	t.Helper()
	m := -1
	testenv.Eventually(t, 60*time.Second, what, func() error {
		m = p.kube.master()
		want := map[int]string{}
		for i := range p.redis {
			want[i] = contract.RoleReplica
		}
		if m >= 0 {
			want[m] = contract.RoleMaster
		}
		if diff := cmp.Diff(want, p.kube.labels()); diff != "" || m < 0 {
			return fmt.Errorf("labels -want, +got:\n%s", diff)
		}
		role, err := p.client(t, m).Do(context.Background(), "ROLE").Slice()
		if err != nil || role[0] != "master" {
			return fmt.Errorf("pod %d is labelled master, its Redis says %v: %w", m, role, err)
		}
		// Sentinel learns replicas from the master's INFO every 10 s, and
		// promotes none it does not know: a fault injected before would be
		// a test of that window, not of the coordinator.
		for i, sen := range p.sentinel {
			c := goredis.NewClient(&goredis.Options{Addr: sen.Addr, Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
			kv, err := c.Do(context.Background(), "SENTINEL", "MASTER", contract.SentinelMasterName).StringSlice()
			_ = c.Close()
			if err != nil {
				return fmt.Errorf("sentinel %d: %w", i, err)
			}
			f := map[string]string{}
			for j := 0; j+1 < len(kv); j += 2 {
				f[kv[j]] = kv[j+1]
			}
			n := strconv.Itoa(len(p.redis) - 1)
			if f["num-slaves"] != n || f["num-other-sentinels"] != n || f["port"] != strconv.Itoa(p.redis[m].Port) {
				return fmt.Errorf("sentinel %d knows master port %s, %s replicas and %s other sentinels", i, f["port"], f["num-slaves"], f["num-other-sentinels"])
			}
		}
		return nil
	})
	return m
}

// sentinel returns a client of pod i's Sentinel.
func (p *pods) sentinelClient(t *testing.T, i int) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: p.sentinel[i].Addr, Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// freshSentinel restarts pod i's Sentinel with the configuration it started
// with, as a recreated pod's: it monitors nothing and knows no replica.
func (p *pods) freshSentinel(t *testing.T, i int) {
	t.Helper()
	p.sentinel[i].Stop()
	if err := os.WriteFile(p.sentinelConf[i], []byte(p.sentinelBody[i]), 0o600); err != nil {
		t.Fatal(err)
	}
	p.sentinel[i].Restart(t)
}

// tilt puts pod i's Sentinel in TILT mode for good (on) or lets it leave
// within a second: a Sentinel on a loaded machine enters TILT when its timer
// runs late, and does nothing but watch while in it.
func (p *pods) tilt(t *testing.T, i int, on bool) {
	t.Helper()
	trigger := "2000"
	if on {
		trigger = "1"
	}
	if err := p.sentinelClient(t, i).Do(context.Background(), "SENTINEL", "DEBUG", "tilt-period", "1000", "tilt-trigger", trigger).Err(); err != nil {
		t.Fatalf("cannot set the TILT trigger of sentinel %d: %v", i, err)
	}
	if !on {
		return
	}
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("sentinel %d in TILT", i), func() error {
		info, err := p.sentinelClient(t, i).Info(context.Background(), "sentinel").Result()
		if err != nil {
			return err
		}
		if f := fields(info); f["sentinel_tilt"] != "1" {
			return fmt.Errorf("sentinel_tilt %q", f["sentinel_tilt"])
		}
		return nil
	})
}

// caughtUp waits until every replica of pod m's Redis has all its writes.
func (p *pods) caughtUp(t *testing.T, m int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "every replica has the master's writes", func() error {
		info, err := p.client(t, m).Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if f := fields(info); f["connected_slaves"] != strconv.Itoa(len(p.redis)-1) || !replicasCaughtUp(f) {
			return fmt.Errorf("replicas: %s connected, not all at offset %s", f["connected_slaves"], f["master_repl_offset"])
		}
		return nil
	})
}

func dbsize(t *testing.T, c *goredis.Client) int64 {
	t.Helper()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		return -1
	}
	return n
}

// TestCoordinator runs three pods' Redis, Sentinel and coordinator through
// the life of an instance: the first master is the pod with data (never an
// empty one), a killed master is replaced and the Service's label follows,
// a master restarted empty never wipes its replicas, and a handover loses no
// acknowledged write.
func TestCoordinator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and Sentinel processes")
	}
	ctx := context.Background()
	p := startPods(t, 3)

	// Pod 1 holds data (it was the master before every pod restarted);
	// pods 0 and 2 are empty.
	one := p.client(t, 1)
	if err := one.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := one.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := one.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	_ = one.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", "1").Err()
	if err := one.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	p.run(t)

	t.Run("ColdStartElectsThePodWithData", func(t *testing.T) {
		m := p.settled(t, "one master, two replicas")
		if m != 1 {
			t.Errorf("the first master should be pod 1, the one with data; got pod %d", m)
		}
		for i := range 3 {
			testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pod %d has the 100 keys", i), func() error {
				if n := dbsize(t, p.client(t, i)); n != 100 {
					return fmt.Errorf("dbsize %d", n)
				}
				return nil
			})
		}
	})

	t.Run("KilledMasterIsReplacedWithoutWipe", func(t *testing.T) {
		old := p.settled(t, "settled before the kill")
		p.redis[old].Stop()
		// Restarted at once and empty (no persistence): it must not become
		// master again nor feed its emptiness to the others.
		p.redis[old].Restart(t)
		m := p.settled(t, "a replica promoted, the restarted pod a replica")
		if m == old {
			t.Errorf("the restarted, empty pod %d should not be master again", m)
		}
		for i := range 3 {
			testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pod %d has the 100 keys", i), func() error {
				if n := dbsize(t, p.client(t, i)); n != 100 {
					return fmt.Errorf("dbsize %d", n)
				}
				return nil
			})
		}
	})

	t.Run("HandoverLosesNoAcknowledgedWrite", func(t *testing.T) {
		old := p.settled(t, "settled before the handover")
		var acked atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := p.kube.master()
				if m < 0 {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				c := goredis.NewClient(&goredis.Options{Addr: p.redis[m].Addr, Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1, ReadTimeout: 40 * time.Second})
				if err := c.Incr(ctx, "counter").Err(); err == nil {
					acked.Add(1)
				}
				_ = c.Close()
			}
		})
		time.Sleep(500 * time.Millisecond)
		c := New(Options{Self: old, Addr: func(j int) string { return p.redis[j].Addr }, SentinelAddr: func(j int) string { return p.sentinel[j].Addr },
			LocalRedis: p.redis[old].Addr, LocalSentinel: p.sentinel[old].Addr, Password: password}, p.kube, testr.New(t))
		defer c.Close()
		if err := c.Handover(ctx); err != nil {
			t.Fatalf("Handover(...): %v", err)
		}
		m := p.settled(t, "the master handed over")
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		if m == old {
			t.Fatalf("pod %d should have handed the master over", old)
		}
		got, err := p.client(t, m).Get(ctx, "counter").Int64()
		if err != nil {
			t.Fatal(err)
		}
		if got < acked.Load() {
			t.Errorf("the new master's counter is %d, but %d INCRs were acknowledged: %d acknowledged writes lost", got, acked.Load(), acked.Load()-got)
		}
		if acked.Load() == 0 {
			t.Error("the writer got no INCR acknowledged")
		}
	})

	t.Run("ReplicaSentinelDoesNotKnowFollowsTheMaster", func(t *testing.T) {
		// As after a force-deleted pod comes back under the name another
		// replica still followed: that replica replicates through it, out of
		// the master's INFO, so the Sentinels do not know it. Were the
		// master lost then, Sentinel would reconfigure only the replicas it
		// knows: this one would follow a dead pod for good and the new
		// master refuse writes for want of a replica.
		m := p.settled(t, "settled before a replica strays")
		var rs []int
		for i := range 3 {
			if i != m {
				rs = append(rs, i)
			}
		}
		if err := p.client(t, rs[1]).Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(p.redis[rs[0]].Port)).Err(); err != nil {
			t.Fatal(err)
		}
		for i, sen := range p.sentinel {
			c := goredis.NewClient(&goredis.Options{Addr: sen.Addr, Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
			err := c.Do(ctx, "SENTINEL", "RESET", contract.SentinelMasterName).Err()
			_ = c.Close()
			if err != nil {
				t.Fatalf("SENTINEL RESET on sentinel %d: %v", i, err)
			}
		}
		if got := p.settled(t, "the stray replica follows the master again, every Sentinel knows it"); got != m {
			t.Errorf("the master should still be pod %d, got pod %d", m, got)
		}
	})

	t.Run("ReplicaWithoutMasterauthReplicates", func(t *testing.T) {
		// As a pod a scale-up from one pod starts before Crossplane updated
		// the Secret: its auth.conf has no masterauth, and its Redis starts
		// held. Before the coordinator set it, the master answered its sync
		// NOAUTH for good and the pod stayed without a role label.
		m := p.settled(t, "settled before a replica restarts without masterauth")
		r := (m + 1) % 3
		c := p.client(t, r)
		if err := c.Do(ctx, "CONFIG", "SET", "masterauth", "").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 60*time.Second, fmt.Sprintf("pod %d replicates from the master again", r), func() error {
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if f := fields(info); f["master_port"] != strconv.Itoa(p.redis[m].Port) || f["master_link_status"] != "up" {
				return fmt.Errorf("master port %s, link %s", f["master_port"], f["master_link_status"])
			}
			return nil
		})
		if got := p.settled(t, "the replica without masterauth labelled replica again"); got != m {
			t.Errorf("the master should still be pod %d, got pod %d", m, got)
		}
		if n := dbsize(t, c); n < 100 {
			t.Errorf("pod %d has %d keys, want at least the 100", r, n)
		}
	})

	t.Run("HeldMasterWithEveryWritePromotedWhenSentinelCannot", func(t *testing.T) {
		// As at a scale from one pod to three (TestHighAvailability saw it):
		// the master's pod restarts and its Redis comes back held with every
		// write (it saved them when it stopped), its fresh Sentinel knows no
		// replica (NOGOODSLAVE), the other Sentinels are in TILT on a
		// loaded machine. Sentinel never promotes the master it names, and
		// a held Redis refuses its replicas' SYNC: before, nobody ever
		// became master.
		m := p.settled(t, "settled before the master restarts")
		c := p.client(t, m)
		for i := range 100 {
			if err := c.Set(ctx, "held:"+strconv.Itoa(i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		p.caughtUp(t, m)
		for i := range 3 {
			if i != m {
				p.tilt(t, i, true)
				defer p.tilt(t, i, false)
			}
		}
		if err := c.Do(ctx, "SHUTDOWN", "SAVE").Err(); err == nil {
			t.Fatal("SHUTDOWN SAVE: the server should have closed the connection")
		}
		p.redis[m].Restart(t)
		p.freshSentinel(t, m)
		if got := p.settled(t, "the held master promoted, the others its replicas"); got != m {
			t.Errorf("the master should be pod %d again, the one whose Redis restarted with every write; got pod %d", m, got)
		}
		for i := range 3 {
			testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pod %d has every key", i), func() error {
				if n := dbsize(t, p.client(t, i)); n != 201 {
					return fmt.Errorf("dbsize %d", n)
				}
				return nil
			})
		}
	})

	t.Run("HeldMasterBehindAReplicaNotPromoted", func(t *testing.T) {
		// The master's Redis is killed and restarts held with an older
		// snapshot than its replicas have: promoting it would lose the
		// writes since. Sentinel fails over to a replica instead, once
		// one can act (here: when TILT ends).
		m := p.settled(t, "settled before the master is killed")
		c := p.client(t, m)
		if err := c.Save(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if err := c.Set(ctx, "late:"+strconv.Itoa(i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		p.caughtUp(t, m)
		var tilted []int
		for i := range 3 {
			if i != m {
				p.tilt(t, i, true)
				tilted = append(tilted, i)
			}
		}
		p.redis[m].Restart(t)
		p.freshSentinel(t, m)
		// The coordinator looks every 200 ms: 15 looks.
		for range 30 {
			role, err := c.Do(ctx, "ROLE").Slice()
			if err == nil && role[0] == "master" {
				t.Fatalf("pod %d's Redis, restarted with %d keys while its replicas had %d, was promoted", m, dbsize(t, c), dbsize(t, p.client(t, (m+1)%3)))
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, i := range tilted {
			p.tilt(t, i, false)
		}
		got := p.settled(t, "a replica promoted, the restarted pod its replica")
		if got == m {
			t.Errorf("pod %d, restarted with older data, should not be master again", m)
		}
		for i := range 3 {
			testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pod %d has every key", i), func() error {
				if n := dbsize(t, p.client(t, i)); n != 251 {
					return fmt.Errorf("dbsize %d", n)
				}
				return nil
			})
		}
	})

	if p.kube.multiMaster {
		t.Error("two pods were labelled master at the same time")
	}
}

// TestColdStartOfRestoredInstance starts an instance created from a backup,
// which only pod 0 restores: pods 1 and 2 start empty long before pod 0's
// restore ends. They must not elect one of them, even after ColdStartWait
// (pod 0 would then replicate the empty master and lose the backup): pod 0
// is elected once it answers, and the others replicate every key from it.
func TestColdStartOfRestoredInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and Sentinel processes")
	}
	ctx := context.Background()
	p := startPods(t, 3)
	// Pod 0's data directory, as its restore leaves it: an RDB file.
	zero := p.client(t, 0)
	if err := zero.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := zero.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := zero.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := zero.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p.redis[0].Stop()

	const coldStartWait = 500 * time.Millisecond
	restored := func(o *Options) { o.Restored, o.ColdStartWait = true, coldStartWait }
	t0 := time.Now()
	p.runSome(t, restored, 1, 2)
	// Well past ColdStartWait, many ticks later: still no master.
	time.Sleep(coldStartWait + 3*time.Second)
	if m := p.kube.master(); m >= 0 {
		t.Errorf("pod %d was elected master %.1fs after the coordinators started while pod 0 was restoring", m, time.Since(t0).Seconds())
	}
	for _, i := range []int{1, 2} {
		if role, err := p.client(t, i).Do(ctx, "ROLE").Slice(); err != nil || role[0] != "slave" || role[1] != "127.0.0.1" {
			t.Errorf("pod %d's Redis should still be held while pod 0 restores: ROLE %v, %v", i, role, err)
		}
	}

	// The restore ends: pod 0's Redis starts held and loads the RDB.
	p.redis[0].Restart(t)
	p.runSome(t, restored, 0)
	if m := p.settled(t, "one master, two replicas"); m != 0 {
		t.Errorf("the first master should be pod 0, the restored one; got pod %d", m)
	}
	for i := range 3 {
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pod %d has the 100 keys", i), func() error {
			if n := dbsize(t, p.client(t, i)); n != 100 {
				return fmt.Errorf("dbsize %d", n)
			}
			return nil
		})
	}
}
