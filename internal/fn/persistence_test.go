package fn

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
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
