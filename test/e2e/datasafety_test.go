//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// dataKeys is how many keys the data safety steps write and check.
const dataKeys = 200

func writeKeys(ctx context.Context, t *testing.T, rc *redis.Client) {
	t.Helper()
	pipe := rc.Pipeline()
	for i := range dataKeys {
		pipe.Set(ctx, fmt.Sprintf("data:%d", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("cannot write %d keys: %v", dataKeys, err)
	}
}

// missingKeys returns how many of the keys writeKeys wrote are gone.
func missingKeys(ctx context.Context, rc *redis.Client) (int, error) {
	keys := make([]string, dataKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("data:%d", i)
	}
	vals, err := rc.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, err
	}
	missing := 0
	for i, v := range vals {
		if v != fmt.Sprint(i) {
			missing++
		}
	}
	return missing, nil
}

// persistenceStep proves on the local control plane that spec changes that
// roll the Redis pod keep every key: AOF on, AOF off, memory resized.
func persistenceStep(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("PersistenceChangesKeepEveryKey", func(t *testing.T) {
		rc, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		writeKeys(ctx, t, rc)
		for _, change := range []struct {
			what  string
			field []string
			value any
		}{
			{"persistence.appendOnly on", []string{"spec", "persistence", "appendOnly"}, true},
			{"persistence.appendOnly off", []string{"spec", "persistence", "appendOnly"}, false},
			{"memory resized", []string{"spec", "memory"}, "384Mi"},
		} {
			o := instance(t, teamA)
			if err := unstructured.SetNestedField(o.Object, change.value, change.field...); err != nil {
				t.Fatal(err)
			}
			if change.what == "memory resized" {
				// Keep AOF off, as the previous change left it.
				_ = unstructured.SetNestedField(o.Object, false, "spec", "persistence", "appendOnly")
			}
			roll(ctx, t, c, o)
			after, _ := redisClient(ctx, t, c, teamA, "cache-redis")
			testenv.Eventually(t, 2*time.Minute, "PING after "+change.what, func() error { return ping(ctx, after) })
			missing, err := missingKeys(ctx, after)
			if err != nil {
				t.Fatal(err)
			}
			if missing > 0 {
				t.Fatalf("%s rolled the pod and lost %d of %d keys", change.what, missing, dataKeys)
			}
			t.Logf("%s: pod rolled, all %d keys there", change.what, dataKeys)
		}
	})
}

// unpullableImageStep proves that a pod that never turns Ready (an image no
// kubelet can pull) heals when the tenant reverts the spec: the StatefulSet
// must not wait forever for the broken pod (kubernetes#67250).

func unpullableImageStep(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("UnpullableImageNeverReadyRevertHeals", func(t *testing.T) {
		good := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis-0"}, good); err != nil {
			t.Fatal(err)
		}
		inst, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamA, name)
		if err != nil {
			t.Fatal(err)
		}
		// A typo in spec.image: no kubelet can pull it.
		bad := []byte(`{"spec":{"image":"registry.example.com/redsi:7.2-alpine"}}`)
		if err := c.Client.Patch(ctx, inst, client.RawPatch(types.MergePatchType, bad)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "pod cache-redis-0 replaced with the bad image", func() error {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis-0"}, p); err != nil {
				return err
			}
			if p.UID == good.UID || p.Spec.Containers[0].Image != "registry.example.com/redsi:7.2-alpine" {
				return errors.New("not replaced yet")
			}
			return nil
		})
		// The pod never turns Ready, and the instance says so.
		for range 10 {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis-0"}, p); err == nil && podReady(p) {
				t.Fatal("a pod whose image cannot be pulled turned Ready")
			}
			time.Sleep(time.Second)
		}
		testenv.Eventually(t, 2*time.Minute, "the instance not Ready while its pod cannot start", func() error {
			s, _, err := conditionOf(ctx, c, teamA, name, "Ready")
			if err != nil {
				return err
			}
			if s == string(corev1.ConditionTrue) {
				return errors.New("Ready=True")
			}
			return nil
		})
		// The tenant reverts: the StatefulSet replaces the broken pod.
		revert := []byte(`{"spec":{"image":null}}`)
		if err := c.Client.Patch(ctx, inst, client.RawPatch(types.MergePatchType, revert)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 3*time.Minute, "a Ready pod with the reverted image", func() error {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis-0"}, p); err != nil {
				return err
			}
			if p.Spec.Containers[0].Image == "registry.example.com/redsi:7.2-alpine" {
				return errors.New("the broken pod is still there (kubernetes#67250)")
			}
			if !podReady(p) {
				return errors.New("not Ready yet")
			}
			return nil
		})
		if err := c.WaitInstanceReady(ctx, teamA, name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		rc, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		testenv.Eventually(t, 2*time.Minute, "PING after the revert", func() error { return ping(ctx, rc) })
		if missing, err := missingKeys(ctx, rc); err != nil || missing > 0 {
			t.Errorf("after the revert %d of %d keys are missing (%v)", missing, dataKeys, err)
		}
		// And the app's key works again: the provider re-created its ACL user.
		app, _ := redisClient(ctx, t, c, teamA, "web-redis")
		testenv.Eventually(t, 2*time.Minute, "the app key works after the revert", func() error { return app.Set(ctx, "app:reverted", "1", 0).Err() })
	})
}
