//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

const (
	teamA = "team-a"
	teamB = "team-b"
	name  = "cache"
)

var composedWant = []struct {
	obj  client.Object
	name string
}{
	{&appsv1.StatefulSet{}, "cache-redis"},
	{&corev1.Service{}, "cache-redis"},
	{&corev1.Service{}, "cache-redis-headless"},
	{&corev1.ConfigMap{}, "cache-redis-config"},
	{&corev1.Secret{}, "cache-redis-auth"},
	{&appsv1.Deployment{}, "cache-http"},
	{&corev1.Service{}, "cache-http"},
}

func repoRoot(t *testing.T) string {
	t.Helper()
	// go test runs in the package directory, test/e2e.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// start brings a control plane up for mode, or skips (fails with
// REDISHTTP_REQUIRE_TOOLS=1) when the tools are not built.
func start(t *testing.T, mode local.Mode) *local.Cluster {
	t.Helper()
	return startWith(t, local.Options{Mode: mode})
}

// startWith is start with more options: opts.Mode, and what the test sets
// of the platform (its own directory, tools and logging are added here).
func startWith(t *testing.T, opts local.Options) *local.Cluster {
	t.Helper()
	mode := opts.Mode
	testenv.Tool(t, "kube-apiserver")
	testenv.Binary(t, "redis-server")
	// Not t.TempDir: the state and logs are kept when the test fails.
	dir, err := os.MkdirTemp("", "redishttp-e2e-"+string(mode)+"-") //nolint:usetesting // Kept on failure.
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	opts.Dir, opts.RepoRoot, opts.ToolDirs = dir, repoRoot(t), filepath.SplitList(os.Getenv("REDISHTTP_TOOLS_BIN"))
	opts.Logf, opts.Debug = t.Logf, os.Getenv("E2E_DEBUG") == "1"
	c, err := local.Start(ctx, opts)
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("control plane state and logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	if err != nil {
		t.Fatalf("cannot start the local control plane: %v\n(logs in %s/logs)", err, dir)
	}
	t.Logf("control plane up in %.1fs (mode %s)", time.Since(t0).Seconds(), mode)
	return c
}

func manifests(t *testing.T, rel string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := local.ReadManifests(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// instance is the example RedisHttpInstance, in namespace ns.
func instance(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	o := manifests(t, "examples/instance/redishttpinstance.yaml")[0]
	o.SetNamespace(ns)
	return o
}

// redisClient connects with the credentials of a connection Secret, to the
// address its endpoint's Service resolves to.
func redisClient(ctx context.Context, t *testing.T, c *local.Cluster, ns, secret string) (*redis.Client, map[string][]byte) {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: secret}, s); err != nil {
		t.Fatalf("cannot get connection Secret %s/%s: %v", ns, secret, err)
	}
	url, err := c.RedisURL(ctx, ns, secret)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	rc := redis.NewClient(opt)
	t.Cleanup(func() { _ = rc.Close() })
	return rc, s.Data
}

func ping(ctx context.Context, rc *redis.Client) error {
	pong, err := rc.Ping(ctx).Result()
	if err != nil {
		return err
	}
	if pong != "PONG" {
		return fmt.Errorf("PING answered %q", pong)
	}
	return nil
}

func TestClaimMode(t *testing.T) { scenario(t, local.ModeClaim) }

func TestNamespacedMode(t *testing.T) { scenario(t, local.ModeNamespaced) }

// scenarioPoll is the provider's poll interval in the scenario, longer than
// the whole scenario: an ApiKey that heals, or follows its instance, within a
// step's wait was healed by the provider's watches, never by its poll (1
// minute by default), however slow the machine.
const scenarioPoll = 2 * time.Hour

// scenario runs the steps of the end-to-end story in one mode. Steps build on
// each other: a failed step stops the scenario.
func scenario(t *testing.T, mode local.Mode) {
	c := startWith(t, local.Options{Mode: mode, ProviderPollInterval: scenarioPoll})
	// A bound for a hung scenario only (it takes 2-5 minutes): each wait
	// has its own.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()

	step := stepper(ctx, t, c, teamA, teamB)

	step("PackagesHealthyAndXRDOffered", func(t *testing.T) {
		for _, p := range c.Packages() {
			if err := c.WaitConditions(ctx, "pkg.crossplane.io/v1", p.Kind, "", p.Name, 2*time.Minute, "Installed", "Healthy"); err != nil {
				t.Error(err)
			}
		}
		xrd, conds := "redishttpinstances.redishttp.io", []string{"Established"}
		if mode == local.ModeClaim {
			xrd, conds = "xredishttpinstances.redishttp.io", []string{"Established", "Offered"}
		}
		if err := c.WaitConditions(ctx, "apiextensions.crossplane.io/v1", "CompositeResourceDefinition", "", xrd, 2*time.Minute, conds...); err != nil {
			t.Error(err)
		}
	})

	var password []byte
	step("InstanceReadyWithComposedObjectsAndConnectionSecret", func(t *testing.T) {
		// Pod Security restricted is enforced in the tenant namespace: the
		// pods of a Ready instance were admitted under it.
		if err := c.EnsureNamespace(ctx, teamA, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := c.Apply(ctx, instance(t, teamA)); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamA, name, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		t.Logf("instance Ready %.1fs after apply", time.Since(t0).Seconds())
		for _, w := range composedWant {
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: w.name}, w.obj); err != nil {
				t.Errorf("composed %T %s/%s: %v", w.obj, teamA, w.name, err)
				continue
			}
			if len(w.obj.GetOwnerReferences()) == 0 {
				t.Errorf("composed %T %s/%s has no owner reference: deleting the instance would leave it behind", w.obj, teamA, w.name)
			}
		}
		s := &corev1.Secret{}
		testenv.Eventually(t, 2*time.Minute, "connection Secret team-a/cache-redis", func() error {
			return c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis"}, s)
		})
		for _, k := range []string{"endpoint", "port", "username", "password", "url"} {
			if len(s.Data[k]) == 0 {
				t.Errorf("connection Secret has no %q", k)
			}
		}
		if got, want := string(s.Data["endpoint"]), "cache-redis.team-a.svc.cluster.local"; got != want {
			t.Errorf("connection Secret endpoint: want %q, got %q", want, got)
		}
		password = s.Data["password"]
		pods := &corev1.PodList{}
		if err := c.Client.List(ctx, pods, client.InNamespace(teamA)); err != nil || len(pods.Items) == 0 {
			t.Errorf("no pod admitted in %s under PSS restricted (err %v)", teamA, err)
		}
	})

	step("PasswordAuthenticatesWrongOneFails", func(t *testing.T) {
		rc, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		testenv.Eventually(t, 2*time.Minute, "PING with the Secret's password", func() error { return ping(ctx, rc) })
		if err := rc.Set(ctx, "app:hello", "world", 0).Err(); err != nil {
			t.Errorf("SET with the Secret's password: %v", err)
		}
		opt := *rc.Options()
		opt.Password = "wrong-" + opt.Password
		bad := redis.NewClient(&opt)
		defer bad.Close()
		if err := ping(ctx, bad); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("PING with a wrong password: want WRONGPASS, got %v", err)
		}
		opt.Username, opt.Password = "", ""
		none := redis.NewClient(&opt)
		defer none.Close()
		if err := ping(ctx, none); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("PING without a password: want NOAUTH, got %v", err)
		}
	})

	tenantSteps(ctx, c, step)

	httpSteps(ctx, c, step)

	if mode == local.ModeNamespaced {
		// One mode is enough: monitoring composes the same objects in both.
		monitoringSteps(ctx, c, step)
	}

	step("ApiKeyScopedToItsKeyPattern", func(t *testing.T) {
		key := manifests(t, "examples/provider/apikey-readwrite.yaml")[0]
		if err := c.Apply(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitConditions(ctx, "redishttp.io/v1alpha1", "ApiKey", teamA, key.GetName(), 2*time.Minute, "Synced", "Ready"); err != nil {
			t.Fatal(err)
		}
		sec, _, _ := unstructured.NestedString(key.Object, "spec", "writeConnectionSecretToRef", "name")
		app, data := redisClient(ctx, t, c, teamA, sec)
		if string(data["username"]) == "default" || len(data["password"]) < 32 {
			t.Errorf("ApiKey Secret: want its own user and a key of >= 32 characters, got user %q", data["username"])
		}
		if err := app.Set(ctx, "app:session", "1", 0).Err(); err != nil {
			t.Errorf("SET app:session with the key: %v", err)
		}
		if err := app.Set(ctx, "billing:x", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("SET billing:x outside the key pattern: want NOPERM, got %v", err)
		}
		if err := app.Do(ctx, "FLUSHALL").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("FLUSHALL with an app key: want NOPERM, got %v", err)
		}
	})

	apiKeyRESTStep(ctx, c, step)
	apiKeyRotationStep(ctx, c, step)

	step("FunctionAndProviderRestartLoseNothing", func(t *testing.T) {
		c.StopFunction()
		c.StopProvider()
		time.Sleep(2 * time.Second)
		if err := c.StartFunction(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.StartProvider(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamA, name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitConditions(ctx, "redishttp.io/v1alpha1", "ApiKey", teamA, "web", 2*time.Minute, "Synced", "Ready"); err != nil {
			t.Fatal(err)
		}
		rc, data := redisClient(ctx, t, c, teamA, "cache-redis")
		if string(data["password"]) != string(password) {
			t.Error("the instance password changed across a function restart")
		}
		testenv.Eventually(t, 2*time.Minute, "PING after restarts", func() error { return ping(ctx, rc) })
		app, _ := redisClient(ctx, t, c, teamA, "web-redis")
		testenv.Eventually(t, 2*time.Minute, "the app key works after restarts", func() error { return app.Set(ctx, "app:after", "1", 0).Err() })
	})

	persistenceStep(ctx, c, step)

	step("MemoryChangeRollsThePodKeepsThePasswordAndHealsKeys", func(t *testing.T) {
		before, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		mmBefore, err := maxmemory(ctx, before)
		if err != nil {
			t.Fatal(err)
		}
		o := instance(t, teamA)
		if err := unstructured.SetNestedField(o.Object, "512Mi", "spec", "memory"); err != nil {
			t.Fatal(err)
		}
		readyAt := roll(ctx, t, c, o)
		sts := &appsv1.StatefulSet{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis"}, sts); err != nil {
			t.Fatal(err)
		}
		if l := sts.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; l.String() != "512Mi" {
			t.Errorf("StatefulSet memory limit: want 512Mi, got %s", l.String())
		}
		// The new pod's Redis started without the app's ACL user; the
		// provider re-creates it. Its pod watch fires when the pod turns
		// Ready (the pod runner makes Ready follow the readiness probe). The
		// provider's poll is scenarioPoll, longer than the scenario: a key
		// that works again within this wait was healed by the watch. How
		// soon is a figure, printed.
		app, _ := redisClient(ctx, t, c, teamA, "web-redis")
		testenv.Eventually(t, 3*time.Minute, "the app key works again after the roll (the provider's pod watch: its poll is "+scenarioPoll.String()+")", func() error {
			return app.Set(ctx, "app:rolled", "1", 0).Err()
		})
		t.Logf("app key usable again %.1fs after the new pod turned Ready", time.Since(readyAt).Seconds())
		rc, data := redisClient(ctx, t, c, teamA, "cache-redis")
		if string(data["password"]) != string(password) {
			t.Error("the instance password changed with spec.memory")
		}
		// What the tenant notices: the Redis behind the Service now has the
		// larger maxmemory, and the old password still opens it.
		mm, err := maxmemory(ctx, rc)
		if err != nil {
			t.Fatal(err)
		}
		if mm <= mmBefore {
			t.Errorf("maxmemory %d, was %d: it should grow with spec.memory", mm, mmBefore)
		}
		t.Logf("maxmemory %d -> %d bytes (spec.memory 256Mi -> 512Mi)", mmBefore, mm)
	})

	unpullableImageStep(ctx, c, step)

	httpOffStep(ctx, c, step)

	step("TenantIsolation", func(t *testing.T) {
		if err := c.EnsureNamespace(ctx, teamB, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
			t.Fatal(err)
		}
		// The steps before rolled the pod: let the provider re-create the
		// app's ACL user first, so the snapshot is of a settled Redis.
		app, _ := redisClient(ctx, t, c, teamA, "web-redis")
		testenv.Eventually(t, 2*time.Minute, "the app key works before the snapshot", func() error { return app.Set(ctx, "app:isolation", "1", 0).Err() })
		admin, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		before, err := admin.Do(ctx, "ACL", "USERS").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		// An ApiKey in team-b naming an instance that exists only in team-a.
		key := manifests(t, "examples/provider/apikey-readwrite.yaml")[0]
		key.SetNamespace(teamB)
		key.SetName("intruder")
		_ = unstructured.SetNestedField(key.Object, "intruder-redis", "spec", "writeConnectionSecretToRef", "name")
		if err := c.Apply(ctx, key); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "intruder Synced=False naming the instance", func() error {
			u, err := c.Get(ctx, "redishttp.io/v1alpha1", "ApiKey", teamB, "intruder")
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cd := range conds {
				m, _ := cd.(map[string]any)
				if m["type"] == "Synced" && m["status"] == "False" && strings.Contains(fmt.Sprint(m["message"]), `RedisHttpInstance "cache"`) {
					return nil
				}
			}
			return fmt.Errorf("conditions: %v", conds)
		})
		if err := c.WaitConditions(ctx, "redishttp.io/v1alpha1", "ApiKey", teamB, "intruder", time.Second, "Ready"); err == nil {
			t.Error("an ApiKey in team-b turned Ready against team-a's instance")
		}
		after, err := admin.Do(ctx, "ACL", "USERS").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(before)
		slices.Sort(after)
		if !slices.Equal(before, after) {
			t.Errorf("team-a's ACL users changed: before %v, after %v", before, after)
		}
		// The same instance name in team-b gets its own objects and password.
		if err := c.Apply(ctx, instance(t, teamB)); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamB, name, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		rb, data := redisClient(ctx, t, c, teamB, "cache-redis")
		if string(data["password"]) == string(password) {
			t.Error("team-b's instance has team-a's password")
		}
		testenv.Eventually(t, 2*time.Minute, "PING team-b's Redis", func() error { return ping(ctx, rb) })
		if v, err := rb.Get(ctx, "app:hello").Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("team-b's Redis holds team-a's data: %q, %v", v, err)
		}
		if err := c.Client.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	})

	step("DeletionCleansUp", func(t *testing.T) {
		admin, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		key, err := c.Get(ctx, "redishttp.io/v1alpha1", "ApiKey", teamA, "web")
		if err != nil {
			t.Fatal(err)
		}
		user := key.GetAnnotations()["crossplane.io/external-name"]
		url, _ := gatewayURL(ctx, t, c)
		ks := &corev1.Secret{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "web-redis"}, ks); err != nil {
			t.Fatal(err)
		}
		token := contract.Token(string(ks.Data[contract.KeyUsername]), string(ks.Data[contract.KeyPassword]))
		if status, _, err := rest(ctx, url, token, "GET", "app:rest"); err != nil || status != http.StatusOK {
			t.Fatalf("the ApiKey's REST token before deletion: status %d, %v", status, err)
		}
		if err := c.Client.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "ApiKey gone", func() error {
			if _, err := c.Get(ctx, "redishttp.io/v1alpha1", "ApiKey", teamA, "web"); !kerrors.IsNotFound(err) {
				return fmt.Errorf("still there (%w)", err)
			}
			return nil
		})
		// Deleting the ApiKey deletes its ACL user: its REST token fails at once.
		if status, _, _ := rest(ctx, url, token, "GET", "app:rest"); status != http.StatusUnauthorized {
			t.Errorf("the deleted ApiKey's REST token: want 401, got %d", status)
		}
		users, err := admin.Do(ctx, "ACL", "USERS").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		if user == "" || slices.Contains(users, user) {
			t.Errorf("ACL user %q of the deleted ApiKey: users now %v", user, users)
		}
		inst, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamA, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Delete(ctx, inst); err != nil {
			t.Fatal(err)
		}
		for _, w := range composedWant {
			testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%T %s garbage collected", w.obj, w.name), func() error {
				err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: w.name}, w.obj)
				if kerrors.IsNotFound(err) {
					return nil
				}
				return fmt.Errorf("still there (%w)", err)
			})
		}
		// storage.reclaimPolicy defaults to Delete: the PVC goes with it.
		testenv.Eventually(t, 2*time.Minute, "PVC data-cache-redis-0 deleted", func() error {
			err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "data-cache-redis-0"}, &corev1.PersistentVolumeClaim{})
			if kerrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%w)", err)
		})
	})

	step("RetainKeepsTheVolume", func(t *testing.T) {
		// storage.reclaimPolicy Retain: the data outlives the instance.
		o := instance(t, teamA)
		o.SetName("keep")
		spec := o.Object["spec"].(map[string]any)
		spec["storage"] = map[string]any{"size": "1Gi", "reclaimPolicy": "Retain"}
		spec["writeConnectionSecretToRef"] = map[string]any{"name": "keep-redis"}
		if err := c.Apply(ctx, o); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamA, "keep", 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		// With whenDeleted: Delete the StatefulSet controller makes the
		// StatefulSet the PVC's owner, so garbage collection removes it; with
		// Retain it must not, so nothing can delete the volume later either.
		pvcKey := client.ObjectKey{Namespace: teamA, Name: "data-keep-redis-0"}
		pvc := &corev1.PersistentVolumeClaim{}
		if err := c.Client.Get(ctx, pvcKey, pvc); err != nil {
			t.Fatalf("PVC data-keep-redis-0: %v", err)
		}
		for _, ref := range pvc.OwnerReferences {
			if ref.Kind == "StatefulSet" {
				t.Errorf("PVC data-keep-redis-0 with reclaimPolicy Retain is owned by StatefulSet %s: garbage collection would delete it", ref.Name)
			}
		}
		if err := c.Client.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "StatefulSet keep-redis garbage collected", func() error {
			err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "keep-redis"}, &appsv1.StatefulSet{})
			if kerrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%w)", err)
		})
		if err := c.Client.Get(ctx, pvcKey, pvc); err != nil {
			t.Errorf("PVC data-keep-redis-0 with reclaimPolicy Retain: %v", err)
		} else if pvc.DeletionTimestamp != nil {
			t.Error("PVC data-keep-redis-0 with reclaimPolicy Retain is being deleted")
		}
	})
}

// roll applies o (the team-a instance) and waits until its pod was replaced
// and the new one turned Ready, and the instance is Ready again. It returns
// when it saw the new pod Ready.
func roll(ctx context.Context, t *testing.T, c *local.Cluster, o *unstructured.Unstructured) time.Time {
	t.Helper()
	old := &corev1.Pod{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis-0"}, old); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, o); err != nil {
		t.Fatal(err)
	}
	var readyAt time.Time
	testenv.Eventually(t, 3*time.Minute, "pod cache-redis-0 replaced and Ready", func() error {
		p := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis-0"}, p); err != nil {
			return err
		}
		if p.UID == old.UID {
			return errors.New("not replaced yet")
		}
		if !podReady(p) {
			return errors.New("new pod not Ready yet")
		}
		readyAt = time.Now()
		return nil
	})
	if err := c.WaitInstanceReady(ctx, teamA, name, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	return readyAt
}

func podReady(p *corev1.Pod) bool {
	for _, cd := range p.Status.Conditions {
		if cd.Type == corev1.PodReady {
			return cd.Status == corev1.ConditionTrue
		}
	}
	return false
}

func maxmemory(ctx context.Context, rc *redis.Client) (int64, error) {
	mm, err := rc.ConfigGet(ctx, "maxmemory").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(mm["maxmemory"], 10, 64)
}

// stepper returns how a test runs its sub-tests in order: each is timed, and
// the first that fails describes the namespaces and stops the test (the
// later ones build on it).
func stepper(ctx context.Context, t *testing.T, c *local.Cluster, namespaces ...string) func(name string, fn func(t *testing.T)) {
	return func(name string, fn func(t *testing.T)) {
		t0 := time.Now()
		if !t.Run(name, fn) {
			for _, ns := range namespaces {
				t.Logf("namespace %s:\n%s", ns, c.Describe(ctx, ns))
			}
			t.FailNow()
		}
		t.Logf("%s took %.1fs", name, time.Since(t0).Seconds())
	}
}
