package fn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// A volumePod runs the pod the function composes for one spec after
// another on one data volume that outlives each pod, as a StatefulSet roll
// does: composePod and internal/podrunner, so init containers, start script
// and readiness probe run as on the local control plane; stop sends SIGTERM
// and waits the pod's grace period, as a kubelet does.
type volumePod struct {
	t    *testing.T
	data string
	cur  *pod
}

func newVolumePod(t *testing.T) *volumePod {
	t.Helper()
	return &volumePod{t: t, data: t.TempDir()}
}

// start composes spec and runs the resulting pod on the data volume; it
// returns a client once the pod is ready (Redis answers, its data loaded).
func (p *volumePod) start(spec string) *redis.Client {
	p.t.Helper()
	p.cur = composePod(p.t, spec)
	for claim := range p.cur.src.claims {
		p.cur.src.claims[claim] = p.data
	}
	c := redis.NewClient(&redis.Options{Addr: p.cur.run(p.t), Password: p.cur.password, DisableIdentity: true, MaxRetries: -1})
	p.t.Cleanup(func() { _ = c.Close() })
	return c
}

// stop stops the pod as a kubelet does: SIGTERM, then the grace period.
func (p *volumePod) stop() { p.cur.running.Stop() }

// TestPersistenceChangesKeepKeys proves that no persistence change loses a
// key: each step restarts the pod with a changed spec, as a roll of the
// StatefulSet does, and every key written so far must still be there.
func TestPersistenceChangesKeepKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	steps := []struct {
		reason string
		spec   string
	}{
		{reason: "The first start, with RDB snapshots only (the default).", spec: `{"memory": "64Mi"}`},
		{reason: "Switching the AOF on must load the RDB's keys, not start empty.", spec: `{"memory": "64Mi", "persistence": {"appendOnly": true}}`},
		{reason: "Switching the AOF off must keep the keys the AOF holds.", spec: `{"memory": "64Mi", "persistence": {"appendOnly": false}}`},
		{reason: "Resizing memory restarts Redis with its data.", spec: `{"memory": "128Mi"}`},
		{reason: "Switching the AOF on again must not load the AOF left from the first time.", spec: `{"memory": "128Mi", "persistence": {"appendOnly": true}}`},
		{reason: "AOF only: the AOF holds every key.", spec: `{"memory": "128Mi", "persistence": {"rdb": false, "appendOnly": true}}`},
		{reason: "From AOF only to no persistence at all, the change itself keeps the keys.", spec: `{"memory": "128Mi", "persistence": {"rdb": false, "appendOnly": false}}`},
	}
	p := newVolumePod(t)
	ctx := context.Background()
	var want []string
	for i, s := range steps {
		c := p.start(s.spec)
		got, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatalf("KEYS: %v", err)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("step %d: %s\nspec %s: every key written before should be there.\nKEYS *: -want, +got:\n%s", i, s.reason, s.spec, diff)
		}
		k := fmt.Sprintf("k%d", i)
		if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		want = append(want, k)
		p.stop()
	}
}

// TestNoPersistenceKeepsKeysThroughStopsOnly proves what a Redis without
// persistence keeps: every key through a restart the tenant asks for (a
// change rolls the pod: SIGTERM, then a new pod on the same volume), and
// nothing through a crash (kill -9: the container is restarted in its pod,
// without init containers), where the RDB of the last stop must not bring
// back keys deleted since.
func TestNoPersistenceKeepsKeysThroughStopsOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	ctx := context.Background()
	keys := func(c *redis.Client) []string {
		t.Helper()
		got, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatalf("KEYS: %v", err)
		}
		slices.Sort(got)
		return got
	}
	p := newVolumePod(t)
	c := p.start(`{"memory": "64Mi", "persistence": {"rdb": false, "appendOnly": false}}`)
	if err := c.MSet(ctx, "kept", "v", "deleted-later", "v").Err(); err != nil {
		t.Fatalf("MSET: %v", err)
	}
	p.stop()

	c = p.start(`{"memory": "128Mi", "persistence": {"rdb": false, "appendOnly": false}}`)
	if diff := cmp.Diff([]string{"deleted-later", "kept"}, keys(c)); diff != "" {
		t.Fatalf("A memory change restarts Redis without persistence: every key should survive the roll.\nKEYS *: -want, +got:\n%s", diff)
	}
	if err := c.Del(ctx, "deleted-later").Err(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if err := c.Set(ctx, "written-before-the-crash", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	if err := p.cur.running.Kill(redisContainer); err != nil {
		t.Fatal(err)
	}
	var got []string
	testenv.Eventually(t, time.Minute, "Redis restarted after kill -9", func() error {
		if n := p.cur.running.Restarts()[redisContainer]; n == 0 {
			return errors.New("not restarted yet")
		}
		if err := p.cur.running.Ready(ctx); err != nil {
			return err
		}
		k, err := c.Keys(ctx, "*").Result()
		got = k
		return err
	})
	if diff := cmp.Diff([]string{}, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("After a crash a Redis without persistence must start empty, never with the dataset of its last stop (a deleted key would come back).\nKEYS *: -want, +got:\n%s", diff)
	}
}
