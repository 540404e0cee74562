package apikey

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// TestApiKeyLifecycle drives ApiKeys through the Kubernetes API against a real
// kube-apiserver, the provider's reconcilers and a real redis-server, and
// checks every promise through a Redis client: the steps share one
// environment and run in order. The poll interval is far longer than the
// test: every step is driven by events, never by waiting for a poll.
func TestApiKeyLifecycle(t *testing.T) {
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 20})
	ctx := context.Background()
	const ns = "team-a"
	h.tenant(t, ns, "cache")

	var webUser, webKey string

	t.Run("ReadWriteKeyTurnsReadyAndAuthenticates", func(t *testing.T) {
		h.create(t, apiKey(ns, "web", v1alpha1.ApiKeyParameters{
			InstanceRef: &v1alpha1.LocalReference{Name: "cache"},
			KeyPatterns: []string{"app:*"},
			Channels:    []string{"app:events"},
		}))
		testenv.Eventually(t, 2*time.Minute, "web Ready", func() error { return ready(h.get(t, ns, "web")) })

		s := h.secret(t, ns, "web-redis")
		webUser, webKey = s[contract.KeyUsername], s[contract.KeyPassword]
		ak := h.get(t, ns, "web")
		if want := ExternalName(ns, "web", string(ak.GetUID())); webUser != want {
			t.Errorf("username: want %q, got %q", want, webUser)
		}
		if !strings.HasPrefix(webKey, KeyPrefix) || len(webKey) < 32 {
			t.Errorf("key does not look like a redishttp key: prefix %q, %d characters", webKey[:min(4, len(webKey))], len(webKey))
		}
		endpoint := "cache-redis.team-a.svc.cluster.local"
		if s[contract.KeyEndpoint] != endpoint || s[contract.KeyPort] != "6379" {
			t.Errorf("endpoint, port: want %q %q, got %q %q", endpoint, "6379", s[contract.KeyEndpoint], s[contract.KeyPort])
		}
		if want := "redis://" + webUser + ":" + webKey + "@" + net.JoinHostPort(endpoint, "6379") + "/0"; s[contract.KeyURL] != want {
			t.Errorf("url is not redis://username:password@endpoint:port/0")
		}
		if err := h.authenticates(webUser, webKey); err != nil {
			t.Errorf("the Secret's key does not authenticate: %v", err)
		}
		// Only the digest reached Redis, and the key is nowhere in the status.
		if acl, _ := h.admin.Do(ctx, "ACL", "LIST").StringSlice(); strings.Contains(strings.Join(acl, "\n"), webKey) {
			t.Error("ACL LIST shows the plaintext key")
		}
		if st := fmt.Sprintf("%+v", ak.Status); strings.Contains(st, webKey) {
			t.Error("status shows the key")
		}
	})

	t.Run("AllowedCommandsWorkOthersGetNoPerm", func(t *testing.T) {
		c := h.as(t, webUser, webKey)
		if err := c.Set(ctx, "app:1", "v", 0).Err(); err != nil {
			t.Errorf("SET app:1: want OK, got %v", err)
		}
		if err := c.Get(ctx, "app:1").Err(); err != nil {
			t.Errorf("GET app:1: want OK, got %v", err)
		}
		if err := c.Publish(ctx, "app:events", "hi").Err(); err != nil {
			t.Errorf("PUBLISH app:events: want OK, got %v", err)
		}
		for _, cmd := range [][]any{
			{"SET", "other:1", "v"},
			{"GET", "other:1"},
			{"PUBLISH", "other", "hi"},
			{"FLUSHALL"},
			{"CONFIG", "GET", "maxmemory"},
			{"ACL", "LIST"},
			{"DEBUG", "SLEEP", "0"},
			{"CLIENT", "KILL", "ID", "999999"},
			{"SHUTDOWN"},
			{"SCRIPT", "FLUSH"},
			{"EVAL", "return 1", "0"},
		} {
			if err := c.Do(ctx, cmd...).Err(); !isNoPerm(err) {
				t.Errorf("%v: want NOPERM, got %v", cmd, err)
			}
		}
	})

	t.Run("ReadOnlyKeyCannotWrite", func(t *testing.T) {
		h.create(t, apiKey(ns, "reports", v1alpha1.ApiKeyParameters{
			InstanceRef: &v1alpha1.LocalReference{Name: "cache"},
			ReadOnly:    true,
		}))
		testenv.Eventually(t, 2*time.Minute, "reports Ready", func() error { return ready(h.get(t, ns, "reports")) })
		s := h.secret(t, ns, "reports-redis")
		c := h.as(t, s[contract.KeyUsername], s[contract.KeyPassword])
		if err := c.Get(ctx, "app:1").Err(); err != nil {
			t.Errorf("GET app:1: want OK, got %v", err)
		}
		if err := c.Set(ctx, "app:1", "w", 0).Err(); !isNoPerm(err) {
			t.Errorf("SET app:1: want NOPERM, got %v", err)
		}
		if err := c.Do(ctx, "FLUSHALL").Err(); !isNoPerm(err) {
			t.Errorf("FLUSHALL: want NOPERM, got %v", err)
		}
	})

	t.Run("NamespacedProviderConfigAndUsage", func(t *testing.T) {
		// Both config kinds go through one code path, and each counts the
		// ApiKeys that use it.
		h.create(t, &v1alpha1.ProviderConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "local"},
			Spec:       v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{AddressOverride: h.redis.Addr}},
		})
		ak := apiKey(ns, "batch", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}})
		ak.Spec.ProviderConfigReference = &xpv2.ProviderConfigReference{Kind: v1alpha1.ProviderConfigKind, Name: "local"}
		h.create(t, ak)
		testenv.Eventually(t, 2*time.Minute, "batch Ready", func() error { return ready(h.get(t, ns, "batch")) })
		testenv.Eventually(t, 2*time.Minute, "usage counted", func() error {
			pc := &v1alpha1.ProviderConfig{}
			if err := h.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "local"}, pc); err != nil {
				return err
			}
			cpc := &v1alpha1.ClusterProviderConfig{}
			if err := h.kube.Get(ctx, types.NamespacedName{Name: DefaultProviderConfigName}, cpc); err != nil {
				return err
			}
			if pc.Status.Users != 1 || cpc.Status.Users != 2 {
				return fmt.Errorf("users: want ProviderConfig 1, ClusterProviderConfig 2, got %d, %d", pc.Status.Users, cpc.Status.Users)
			}
			return nil
		})
	})

	t.Run("SpecChangeNarrowsPermissionsKeepingTheKey", func(t *testing.T) {
		h.update(t, ns, "web", func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider.KeyPatterns = []string{"app:narrow:*"} })
		c := h.as(t, webUser, webKey)
		testenv.Eventually(t, 2*time.Minute, "app:1 forbidden", func() error {
			if err := c.Set(ctx, "app:1", "v", 0).Err(); !isNoPerm(err) {
				return fmt.Errorf("SET app:1: want NOPERM, got %w", err)
			}
			return nil
		})
		if err := c.Set(ctx, "app:narrow:1", "v", 0).Err(); err != nil {
			t.Errorf("SET app:narrow:1: want OK, got %v", err)
		}
		if got := h.secret(t, ns, "web-redis")[contract.KeyPassword]; got != webKey {
			t.Error("the key changed on a permission update")
		}
	})

	t.Run("ProviderRestartWritesNothingForKeysThatAreRight", func(t *testing.T) {
		// Every key is Ready and as its spec says; a provider that starts
		// re-verifies each, and must write nothing for any of them. Five
		// keys, three sets of command rules (web's patterns add rules).
		for _, k := range []string{"plain-0", "plain-1"} {
			h.create(t, apiKey(ns, k, v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}))
		}
		keys := []string{"web", "reports", "batch", "plain-0", "plain-1"}
		const ruleSets = 3
		for _, k := range keys {
			testenv.Eventually(t, 2*time.Minute, k+" Ready", func() error { return ready(h.get(t, ns, k)) })
		}
		h.stop()
		h.requests.reset()
		h.verified.reset()
		if err := h.admin.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		h.stop = h.startProvider(t)
		testenv.Eventually(t, 2*time.Minute, "every key re-verified", func() error {
			if n := h.verified.count(); n < len(keys) {
				return fmt.Errorf("%d of %d keys re-verified", n, len(keys))
			}
			return nil
		})
		if w := keyWrites(h.requests.writes()); len(w) > 0 {
			t.Errorf("API writes for keys after a restart: want none, got %v", w)
		}
		// Reading a Secret is a request to the API server (they are never
		// cached): Observe reads a key's Secret, and the connection
		// publisher compares with what Observe read.
		for _, k := range keys {
			if got := h.requests.reads("/api/v1/namespaces/" + ns + "/secrets/" + k + "-redis"); got != 1 {
				t.Errorf("reads of the connection Secret of %q to re-verify it: want 1, got %d", k, got)
			}
		}
		// What Redis is asked to write: one probe user (ACL SETUSER, ACL
		// DELUSER) per distinct set of command rules, to learn how Redis
		// writes them; nothing for any key.
		if got, want := aclWrites(t, h.admin), 2*ruleSets; got != want {
			t.Errorf("ACL writes after a restart: want %d (a probe user for each of %d sets of command rules), got %d", want, ruleSets, got)
		}

		// The provider watches instances: a new key reads its instance
		// from the provider's cache, not from the API server.
		h.requests.reset()
		h.create(t, apiKey(ns, "plain-2", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}))
		testenv.Eventually(t, 2*time.Minute, "plain-2 Ready", func() error { return ready(h.get(t, ns, "plain-2")) })
		if got := h.requests.count("GET redishttpinstances"); got != 0 {
			t.Errorf("reads of the instance from the API server for a new key: want 0, got %d", got)
		}
		// Its user made, the reconcile observes it at once: one status
		// write (Ready), not Creating first and Ready a second later.
		if got := h.requests.count("PUT apikeys/status"); got != 1 {
			t.Errorf("status writes for a new key: want 1, got %d", got)
		}
	})

	t.Run("RedisRestartHealsWithTheSameKey", func(t *testing.T) {
		// The instance's Redis pod, as the StatefulSet makes it; envtest
		// has no kubelet, so the test plays its part and sets its status.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache-redis-0", Labels: map[string]string{
				contract.LabelName: contract.NameRedis, contract.LabelInstance: "cache", contract.LabelManagedBy: contract.ManagedBy,
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "redis", Image: "redis"}}},
		}
		h.create(t, pod)
		status := func(ready corev1.ConditionStatus, restarts int32) {
			t.Helper()
			pod.Status = corev1.PodStatus{
				Phase:             corev1.PodRunning,
				PodIP:             "10.0.0.10",
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "redis", Ready: ready == corev1.ConditionTrue, RestartCount: restarts}},
			}
			if err := h.kube.Status().Update(ctx, pod); err != nil {
				t.Fatalf("cannot update the status of Pod %q: %v", pod.GetName(), err)
			}
		}
		status(corev1.ConditionTrue, 0)

		// The Redis container is OOM killed and restarts: the pod turns
		// unready, Redis comes back without its runtime users, then the
		// pod is ready again.
		status(corev1.ConditionFalse, 0)
		h.redis.Restart(t)
		if err := h.authenticates(webUser, webKey); err == nil {
			t.Fatal("the user survived a restart without an ACL file; the test proves nothing")
		}
		t0 := time.Now()
		status(corev1.ConditionTrue, 1)
		// Generous for a slow machine; with a 10 minute poll interval only
		// the pod's readiness can bring the user back in time.
		testenv.Eventually(t, 2*time.Minute, "web user back", func() error { return h.authenticates(webUser, webKey) })
		t.Logf("web key authenticates again %s after its Redis pod turned ready", time.Since(t0).Round(time.Millisecond))
		c := h.as(t, webUser, webKey)
		if err := c.Set(ctx, "app:narrow:2", "v", 0).Err(); err != nil {
			t.Errorf("SET app:narrow:2 after heal: want OK, got %v", err)
		}
		if err := c.Set(ctx, "app:2", "v", 0).Err(); !isNoPerm(err) {
			t.Errorf("SET app:2 after heal: want NOPERM, got %v", err)
		}
	})

	t.Run("RotationKeepsTheOldKeyForTheGracePeriod", func(t *testing.T) {
		// The test asserts the order of events, never how fast they come:
		// a slow machine may leave nothing of the grace period to check the
		// old key in, which is logged, not failed. The grace period is long
		// enough that on any usual machine it is checked.
		const grace = 10 * time.Second
		h.update(t, ns, "web", func(ak *v1alpha1.ApiKey) {
			ak.Spec.ForProvider.Rotation = v1alpha1.Rotation{Serial: 1, GracePeriod: new(grace.String())}
		})
		var newKey string
		testenv.Eventually(t, 2*time.Minute, "Secret switched to a new key", func() error {
			newKey = h.secret(t, ns, "web-redis")[contract.KeyPassword]
			if newKey == webKey {
				return fmt.Errorf("still the old key")
			}
			return nil
		})
		// The rotation is recorded before the Secret sees the new key.
		at := h.get(t, ns, "web").Status.AtProvider
		if at.PreviousKeyExpiresAt == nil {
			t.Fatal("the Secret switched before the rotation's grace period was recorded")
		}
		expires := at.PreviousKeyExpiresAt.Time
		if err := h.authenticates(webUser, newKey); err != nil {
			t.Errorf("new key right after the switch: %v", err)
		}

		// Right after the switch the key apps still hold keeps working; it
		// may only stop once its grace period is over.
		err := h.authenticates(webUser, webKey)
		switch {
		case err == nil:
		case time.Now().Before(expires):
			t.Errorf("old key dropped %s before its grace period ended: %v", time.Until(expires).Round(time.Millisecond), err)
		default:
			t.Logf("the %s grace period was over before the old key could be checked: the machine is slow", grace)
		}

		testenv.Eventually(t, grace+30*time.Second, "old key dropped", func() error {
			if h.authenticates(webUser, webKey) == nil {
				return fmt.Errorf("old key still works")
			}
			return nil
		})
		if time.Now().Before(expires) {
			t.Errorf("old key dropped %s before its grace period ended", time.Until(expires).Round(time.Millisecond))
		}
		if err := h.authenticates(webUser, newKey); err != nil {
			t.Errorf("new key after the grace period: %v", err)
		}
		if got := h.secret(t, ns, "web-redis")[contract.KeyPassword]; got != newKey {
			t.Error("the Secret changed again after the rotation")
		}
		webKey = newKey
	})

	t.Run("MissingInstanceIsAClearCondition", func(t *testing.T) {
		h.create(t, apiKey(ns, "orphan", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "nope"}}))
		want := `cannot get RedisHttpInstance "nope"`
		testenv.Eventually(t, 2*time.Minute, "Synced=False naming the instance", func() error {
			c := h.get(t, ns, "orphan").GetCondition(xpv2.TypeSynced)
			if c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, want) {
				return fmt.Errorf("Synced: %s %s", c.Status, c.Message)
			}
			return nil
		})
		testenv.Eventually(t, 2*time.Minute, "a warning event", func() error {
			l := &corev1.EventList{}
			if err := h.kube.List(ctx, l, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range l.Items {
				if e.InvolvedObject.Name == "orphan" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, want) {
					return nil
				}
			}
			return fmt.Errorf("no warning event mentions %q", want)
		})
		// Deletion rule: with no instance there is no Redis to clean, so
		// deletion completes.
		if err := h.kube.Delete(ctx, h.get(t, ns, "orphan")); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "orphan deleted", func() error { return gone404(h.kube, ns, "orphan", &v1alpha1.ApiKey{}) })
	})

	t.Run("DeletionCompletesWhenTheInstanceIsGone", func(t *testing.T) {
		// Deletion rule: an instance that is gone took its Redis, and the
		// user in it, along; deletion must not wait for a Redis that will
		// never answer again.
		const nsB = "team-b"
		h.tenant(t, nsB, "cache")
		h.create(t, apiKey(nsB, "job", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}))
		testenv.Eventually(t, 2*time.Minute, "job Ready", func() error { return ready(h.get(t, nsB, "job")) })
		if fin := h.get(t, nsB, "job").GetFinalizers(); len(fin) == 0 {
			t.Fatal("job has no finalizer; the test proves nothing")
		}
		in := &unstructured.Unstructured{}
		in.SetGroupVersionKind(InstanceGroupVersionKind)
		in.SetNamespace(nsB)
		in.SetName("cache")
		if err := h.kube.Delete(ctx, in); err != nil {
			t.Fatal(err)
		}
		if err := h.kube.Delete(ctx, h.get(t, nsB, "job")); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "job deleted", func() error { return gone404(h.kube, nsB, "job", &v1alpha1.ApiKey{}) })
	})

	t.Run("ExamplesAreValidAndBadSpecsAreRefused", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("..", "..", "..", "examples", "provider", "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no examples found: %v", err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for doc := range strings.SplitSeq(string(b), "\n---\n") {
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if u.GroupVersionKind().Group == "pkg.crossplane.io" {
					// Crossplane's own types are not installed here.
					continue
				}
				// The test's own objects may carry the same names.
				u.SetName("example-" + u.GetName())
				if err := h.kube.Create(ctx, u, client.DryRunAll); err != nil {
					t.Errorf("%s: the API server refuses %s %q: %v", f, u.GetKind(), u.GetName(), err)
				}
			}
		}

		both := apiKey(ns, "both", v1alpha1.ApiKeyParameters{
			InstanceRef:         &v1alpha1.LocalReference{Name: "cache"},
			ConnectionSecretRef: &v1alpha1.LocalReference{Name: "mine"},
		})
		noSecret := apiKey(ns, "nosecret", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}})
		noSecret.Spec.WriteConnectionSecretToReference = nil
		spaced := apiKey(ns, "spaced", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}, KeyPatterns: []string{"a b"}})
		password := apiKey(ns, "password", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}, Commands: []string{">secret"}})
		// A grace period that is not a Go duration would be stored, then fail
		// the decoding of every ApiKey the provider lists: refused instead.
		grace := &unstructured.Unstructured{}
		grace.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind)
		grace.SetNamespace(ns)
		grace.SetName("grace")
		grace.Object["spec"] = map[string]any{
			"writeConnectionSecretToRef": map[string]any{"name": "grace-redis"},
			"forProvider": map[string]any{
				"instanceRef": map[string]any{"name": "cache"},
				"rotation":    map[string]any{"serial": int64(1), "gracePeriod": "10 minutes"},
			},
		}
		if err := h.kube.Create(ctx, grace, client.DryRunAll); !kerrors.IsInvalid(err) {
			t.Errorf("ApiKey %q with gracePeriod %q: want Invalid from the API server, got %v", grace.GetName(), "10 minutes", err)
		}
		for _, ak := range []*v1alpha1.ApiKey{both, noSecret, spaced, password} {
			if err := h.kube.Create(ctx, ak, client.DryRunAll); !kerrors.IsInvalid(err) {
				t.Errorf("ApiKey %q: want Invalid from the API server, got %v", ak.GetName(), err)
			}
		}
	})

	t.Run("DeletionRemovesTheUserAndTheSecret", func(t *testing.T) {
		if err := h.kube.Delete(ctx, h.get(t, ns, "web")); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "web deleted", func() error { return gone404(h.kube, ns, "web", &v1alpha1.ApiKey{}) })
		if err := h.admin.Do(ctx, "ACL", "GETUSER", webUser).Err(); err == nil {
			// ACL GETUSER replies nil for a missing user.
			if v, _ := h.admin.Do(ctx, "ACL", "GETUSER", webUser).Result(); v != nil {
				t.Errorf("ACL user %q still exists", webUser)
			}
		}
		if err := gone404(h.kube, ns, "web-redis", &corev1.Secret{}); err != nil {
			t.Error(err)
		}
		if err := h.authenticates(webUser, webKey); err == nil {
			t.Error("the deleted key still authenticates")
		}
	})
}

func gone404(kube client.Client, ns, name string, o client.Object) error {
	err := kube.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, o)
	if kerrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("%T %q still exists (%w)", o, name, err)
}
