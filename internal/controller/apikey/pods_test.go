package apikey

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
)

type podOption func(*corev1.Pod)

// redisPod returns a pod of instance "cache" in namespace "team-a", labelled
// as the composition function labels it.
func redisPod(o ...podOption) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "team-a", Name: "cache-redis-0", UID: "uid-1",
		Labels: map[string]string{contract.LabelName: contract.NameRedis, contract.LabelInstance: "cache", contract.LabelManagedBy: contract.ManagedBy},
	}}
	p.Status.PodIP = "10.0.0.1"
	for _, fn := range o {
		fn(p)
	}
	return p
}

func withReady(s corev1.ConditionStatus) podOption {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: s}}
	}
}

func withUID(uid types.UID) podOption { return func(p *corev1.Pod) { p.UID = uid } }

func withIP(ip string) podOption { return func(p *corev1.Pod) { p.Status.PodIP = ip } }

func withRestarts(n int32) podOption {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "redis", RestartCount: n}}
	}
}

func withoutLabel(k string) podOption { return func(p *corev1.Pod) { delete(p.Labels, k) } }

func TestRestarts(t *testing.T) {
	errBoom := errors.New("boom")
	// The cache holds the ApiKeys of namespace team-a: two of instance
	// cache, one of another instance, one bringing its own Redis.
	keys := []v1alpha1.ApiKey{
		*apiKey("team-a", "web", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}),
		*apiKey("team-a", "jobs", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}),
		*apiKey("team-a", "other", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "sessions"}}),
		*apiKey("team-a", "own", v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "mine"}}),
	}
	cacheKeys := []reconcile.Request{
		{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "jobs"}},
		{NamespacedName: types.NamespacedName{Namespace: "team-a", Name: "web"}},
	}
	type args struct {
		was *corev1.Pod // nil: the pod was created
		pod *corev1.Pod
		err error // of listing ApiKeys
	}
	type want struct {
		checked bool
		enqueue []reconcile.Request
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"CreatedReady": {
			reason: "A Redis pod seen ready when the provider starts may run a Redis that restarted while it was away.",
			args:   args{pod: redisPod(withReady(corev1.ConditionTrue))},
			want:   want{checked: true, enqueue: cacheKeys},
		},
		"CreatedNotReady": {
			reason: "A Redis pod that is not ready yet serves no Redis to heal.",
			args:   args{pod: redisPod()},
			want:   want{},
		},
		"BecameReady": {
			reason: "A Redis pod that becomes ready runs a Redis that may have lost its users: the instance's ApiKeys, and only those, are enqueued.",
			args:   args{was: redisPod(withReady(corev1.ConditionFalse)), pod: redisPod(withReady(corev1.ConditionTrue))},
			want:   want{checked: true, enqueue: cacheKeys},
		},
		"StillReady": {
			reason: "A ready Redis pod that changed in no way that means a new Redis (a resync, a label) enqueues nothing.",
			args:   args{was: redisPod(withReady(corev1.ConditionTrue)), pod: redisPod(withReady(corev1.ConditionTrue))},
			want:   want{},
		},
		"ReplacedWhileReady": {
			reason: "A pod with a new UID is a new Redis, even if no event showed it unready.",
			args:   args{was: redisPod(withReady(corev1.ConditionTrue)), pod: redisPod(withReady(corev1.ConditionTrue), withUID("uid-2"))},
			want:   want{checked: true, enqueue: cacheKeys},
		},
		"NewIPWhileReady": {
			reason: "A ready pod at a new IP runs a new Redis.",
			args:   args{was: redisPod(withReady(corev1.ConditionTrue)), pod: redisPod(withReady(corev1.ConditionTrue), withIP("10.0.0.2"))},
			want:   want{checked: true, enqueue: cacheKeys},
		},
		"ContainerRestartedWhileReady": {
			reason: "A container restart too quick for readiness to fail (an OOM kill) still is a new Redis.",
			args:   args{was: redisPod(withReady(corev1.ConditionTrue)), pod: redisPod(withReady(corev1.ConditionTrue), withRestarts(1))},
			want:   want{checked: true, enqueue: cacheKeys},
		},
		"BecameUnready": {
			reason: "A Redis going down has nothing to heal yet: its return does.",
			args:   args{was: redisPod(withReady(corev1.ConditionTrue)), pod: redisPod(withReady(corev1.ConditionFalse), withRestarts(1))},
			want:   want{},
		},
		"NoInstanceLabel": {
			reason: "A Redis pod that names no instance belongs to no ApiKey.",
			args:   args{pod: redisPod(withReady(corev1.ConditionTrue), withoutLabel(contract.LabelInstance))},
			want:   want{},
		},
		"NotManagedByRedishttp": {
			reason: "A pod that is not a redishttp Redis is ignored, even if the cache holds it.",
			args:   args{pod: redisPod(withReady(corev1.ConditionTrue), withoutLabel(contract.LabelManagedBy))},
			want:   want{},
		},
		"ListFails": {
			reason: "When the ApiKeys cannot be listed nothing is enqueued (the next poll heals them), but the snapshots are still checked.",
			args:   args{pod: redisPod(withReady(corev1.ConditionTrue)), err: errBoom},
			want:   want{checked: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kube := &test.MockClient{MockList: func(_ context.Context, obj client.ObjectList, opts ...client.ListOption) error {
				lo := &client.ListOptions{}
				lo.ApplyOptions(opts)
				if lo.Namespace != "team-a" {
					t.Errorf("List(...): want namespace %q, got %q", "team-a", lo.Namespace)
				}
				obj.(*v1alpha1.ApiKeyList).Items = keys
				return tc.args.err
			}}
			checked := false
			r := restarts{kube: kube, check: func() { checked = true }, log: logging.NewNopLogger()}
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			if tc.args.was == nil {
				r.Create(context.Background(), event.CreateEvent{Object: tc.args.pod}, q)
			} else {
				r.Update(context.Background(), event.UpdateEvent{ObjectOld: tc.args.was, ObjectNew: tc.args.pod}, q)
			}
			var got []reconcile.Request
			for q.Len() > 0 {
				req, _ := q.Get()
				got = append(got, req)
				q.Done(req)
			}
			sort := cmpopts.SortSlices(func(a, b reconcile.Request) bool { return a.Name < b.Name })
			if diff := cmp.Diff(tc.want, want{checked: checked, enqueue: got}, cmp.AllowUnexported(want{}), sort, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s\nrestarts(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
