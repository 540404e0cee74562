package apikey

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// TestApiKeysOnEveryNode runs an instance with replicas as three real
// redis-servers (a master and two replicas of it) behind three Redis pods,
// whose status the test sets as a kubelet would. Redis does not replicate
// ACL users: every key must be on every pod, reach a pod that was down once
// it is back, and a deleted key must not survive on a pod that was cut off.
func TestApiKeysOnEveryNode(t *testing.T) {
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 20})
	ctx := context.Background()
	const ns, instance = "team-ha", "cache"
	h.tenant(t, ns, instance)

	servers, pods := h.redisPods(t, ns, instance, 3)
	// podStatus plays the kubelet, as redisPods did.
	podStatus := func(t *testing.T, i int, ready corev1.ConditionStatus, restarts int32) {
		t.Helper()
		h.podStatus(t, pods[i], ready, restarts)
	}
	newKey := func(t *testing.T, name string) {
		t.Helper()
		ak := apiKey(ns, name, v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: instance}})
		ak.Spec.ProviderConfigReference = &xpv2.ProviderConfigReference{Kind: v1alpha1.ProviderConfigKind, Name: "pods"}
		h.create(t, ak)
		testenv.Eventually(t, 2*time.Minute, name+" Ready", func() error { return ready(h.get(t, ns, name)) })
	}
	// on reports whether the key of ApiKey name, as its Secret holds it now,
	// authenticates on server i.
	on := func(t *testing.T, i int, name string) error {
		s := h.secret(t, ns, name+"-redis")
		c := goredis.NewClient(&goredis.Options{Addr: servers[i].Addr, Username: s[contract.KeyUsername], Password: s[contract.KeyPassword], Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}

	t.Run("EveryKeyIsOnEveryPod", func(t *testing.T) {
		newKey(t, "web")
		// Whichever pod a failover makes the master, the key works there at
		// once: it is on every pod as soon as it is Ready.
		for i := range servers {
			if err := on(t, i, "web"); err != nil {
				t.Errorf("web on pod %d: want it to authenticate, got %v", i, err)
			}
		}
	})

	t.Run("KeyMadeWhileAPodIsDownReachesItWhenItIsBack", func(t *testing.T) {
		podStatus(t, 2, corev1.ConditionFalse, 0)
		servers[2].Stop()
		newKey(t, "late")
		h.update(t, ns, "web", func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider.Rotation.Serial++ })
		testenv.Eventually(t, 2*time.Minute, "web rotated", func() error {
			if at := h.get(t, ns, "web").Status.AtProvider; at.RotationSerial == nil || *at.RotationSerial != 1 {
				return fmt.Errorf("rotation serial %v", at.RotationSerial)
			}
			return ready(h.get(t, ns, "web"))
		})
		for i := range 2 {
			for _, k := range []string{"late", "web"} {
				if err := on(t, i, k); err != nil {
					t.Errorf("%s on pod %d: want it to authenticate, got %v", k, i, err)
				}
			}
		}

		// The pod comes back with an empty Redis (no ACL file), and turns
		// ready: both keys reach it, with the keys apps hold.
		servers[2].Restart(t)
		t0 := time.Now()
		podStatus(t, 2, corev1.ConditionTrue, 1)
		for _, k := range []string{"late", "web"} {
			testenv.Eventually(t, 2*time.Minute, k+" on pod 2", func() error { return on(t, 2, k) })
		}
		t.Logf("keys on the returned pod %s after it turned ready", time.Since(t0).Round(time.Millisecond))
	})

	t.Run("KeyDeletedWhileAPodIsCutOffIsDeletedThereToo", func(t *testing.T) {
		newKey(t, "gone")
		s := h.secret(t, ns, "gone-redis")
		podStatus(t, 1, corev1.ConditionFalse, 0)
		servers[1].Freeze(t)
		if err := h.kube.Delete(ctx, h.get(t, ns, "gone")); err != nil {
			t.Fatal(err)
		}
		// Revoked at once where Redis answers...
		testenv.Eventually(t, 2*time.Minute, "gone revoked on pods 0 and 2", func() error {
			for _, i := range []int{0, 2} {
				if err := h.authenticatesOn(servers[i].Addr, s[contract.KeyUsername], s[contract.KeyPassword]); err == nil {
					return fmt.Errorf("gone still authenticates on pod %d", i)
				}
			}
			return nil
		})
		// ...and the ApiKey stays until the pod that still has the user
		// can be told.
		if err := h.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gone"}, &v1alpha1.ApiKey{}); err != nil {
			t.Fatalf("ApiKey gone: want it kept while a pod cannot be told, got %v", err)
		}
		servers[1].Thaw(t)
		podStatus(t, 1, corev1.ConditionTrue, 0)
		testenv.Eventually(t, 2*time.Minute, "ApiKey gone deleted", func() error {
			err := h.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "gone"}, &v1alpha1.ApiKey{})
			switch {
			case kerrors.IsNotFound(err):
				return nil
			case err != nil:
				return err
			}
			return errors.New("ApiKey gone still exists")
		})
		if err := h.authenticatesOn(servers[1].Addr, s[contract.KeyUsername], s[contract.KeyPassword]); err == nil {
			t.Error("a key deleted while its pod was cut off still authenticates there")
		}
	})
}

func TestInstancePods(t *testing.T) {
	a := admin{endpoint: "cache-redis.team-a.svc.example.org", port: "6379"}
	pod := func(ordinal int, ip string, ready bool) corev1.Pod {
		p := *redisPod(withIP(ip), withReady(corev1.ConditionFalse))
		p.Name = contract.PodName("cache", ordinal)
		if ready {
			p.Status.Conditions[0].Status = corev1.ConditionTrue
		}
		p.Spec.Containers = []corev1.Container{{Name: "redis", Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 7000 + int32(ordinal)}}}}
		return p
	}
	pods := func(items ...corev1.Pod) client.Reader {
		return &test.MockClient{MockList: func(_ context.Context, l client.ObjectList, _ ...client.ListOption) error {
			l.(*corev1.PodList).Items = items
			return nil
		}}
	}
	type args struct {
		pods client.Reader
		ia   v1alpha1.InstanceAccess
	}
	type want struct {
		pods []instancePod
		err  error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"OnePod": {
			reason: "An instance with one Redis pod should be dialled at its Service, as before replicas existed.",
			args:   args{pods: pods(pod(0, "10.0.0.1", true))},
		},
		"NoPodAccess": {
			reason: "A provider that may not list pods should dial the Service only.",
		},
		"AddressOverride": {
			reason: "An address override dials every instance at one address: there are no pods to reach.",
			args:   args{pods: pods(pod(0, "10.0.0.1", true), pod(1, "10.0.0.2", true)), ia: v1alpha1.InstanceAccess{AddressOverride: "127.0.0.1:6379"}},
		},
		"PodsByDNS": {
			reason: "By default every pod should be dialled by its stable name through the headless Service, in the cluster domain of the instance's endpoint, sorted by name.",
			args:   args{pods: pods(pod(1, "10.0.0.2", false), pod(0, "10.0.0.1", true))},
			want: want{pods: []instancePod{
				{name: "cache-redis-0", address: "cache-redis-0.cache-redis-headless.team-a.svc.example.org:6379", ready: true},
				{name: "cache-redis-1", address: "cache-redis-1.cache-redis-headless.team-a.svc.example.org:6379"},
			}},
		},
		"PodsByIP": {
			reason: "With EndpointSlice resolution every pod should be dialled at its IP and its Redis container's port; a pod without an IP has no address yet.",
			args:   args{pods: pods(pod(0, "10.0.0.1", true), pod(1, "", false)), ia: v1alpha1.InstanceAccess{Resolve: v1alpha1.ResolveEndpointSlice}},
			want: want{pods: []instancePod{
				{name: "cache-redis-0", address: "10.0.0.1:7000", ready: true},
				{name: "cache-redis-1"},
			}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := instancePods(context.Background(), tc.args.pods, "team-a", "cache", a, tc.args.ia)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\ninstancePods(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.pods, got, cmp.AllowUnexported(instancePod{})); diff != "" {
				t.Errorf("%s\ninstancePods(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// redisPods runs an instance with replicas as n real redis-servers (a master
// and replicas of it) behind n Redis pods, ready as a kubelet would set them,
// and a ProviderConfig "pods" in namespace ns through which the provider
// reaches each pod at its IP, as on the local platform.
func (h *harness) redisPods(t testing.TB, ns, instance string, n int) ([]*testenv.Redis, []*corev1.Pod) {
	t.Helper()
	auth := []string{"--requirepass", adminPassword, "--masterauth", adminPassword}
	master := testenv.StartRedis(t, auth...)
	servers := []*testenv.Redis{master}
	for range n - 1 {
		servers = append(servers, testenv.StartRedis(t, append(auth, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))...))
	}
	pods := make([]*corev1.Pod, len(servers))
	for i, r := range servers {
		pods[i] = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: contract.PodName(instance, i), Labels: map[string]string{
				contract.LabelName: contract.NameRedis, contract.LabelInstance: instance, contract.LabelManagedBy: contract.ManagedBy,
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "redis", Image: "redis", Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: int32(r.Port)}}}}},
		}
		h.create(t, pods[i])
		h.podStatus(t, pods[i], corev1.ConditionTrue, 0)
	}
	h.create(t, &v1alpha1.ProviderConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pods"},
		Spec:       v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{Resolve: v1alpha1.ResolveEndpointSlice}},
	})
	return servers, pods
}

// podStatus plays the kubelet: every Redis listens on 127.0.0.1, at the port
// its pod's container declares.
func (h *harness) podStatus(t testing.TB, p *corev1.Pod, ready corev1.ConditionStatus, restarts int32) {
	t.Helper()
	p.Status = corev1.PodStatus{
		Phase:             corev1.PodRunning,
		PodIP:             "127.0.0.1",
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "redis", Ready: ready == corev1.ConditionTrue, RestartCount: restarts}},
	}
	if err := h.kube.Status().Update(context.Background(), p); err != nil {
		t.Fatalf("cannot update the status of Pod %q: %v", p.GetName(), err)
	}
}
