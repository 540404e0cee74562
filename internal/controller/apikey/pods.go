package apikey

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// RedisPods selects the Redis pods of RedisHttpInstances. The provider
// caches these pods only: cmd/provider restricts the manager's Pod informer
// to them, so the provider never holds every pod of the cluster.
func RedisPods() labels.Selector {
	return labels.SelectorFromSet(labels.Set{contract.LabelName: contract.NameRedis, contract.LabelManagedBy: contract.ManagedBy})
}

// A queue is where a handler adds reconcile requests.
type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// restarts heals the ApiKeys of an instance as soon as its Redis comes back.
// A Redis restarted without an ACL file (a rolled pod, an OOM kill, a
// drained node) lost every ApiKey's user; waiting for the next poll of each
// ApiKey would leave the apps locked out for up to a poll interval. When an
// instance's Redis pod becomes ready, or is replaced or restarted while
// ready, restarts asks the ACL snapshots to check that their Redis did not
// restart, and enqueues the instance's ApiKeys.
type restarts struct {
	kube  client.Reader
	check func()
	log   logging.Logger
}

func (r restarts) Create(ctx context.Context, e event.CreateEvent, q queue) {
	if p, ok := e.Object.(*corev1.Pod); ok && podReady(p) {
		r.enqueue(ctx, p, q)
	}
}

func (r restarts) Update(ctx context.Context, e event.UpdateEvent, q queue) {
	was, ok := e.ObjectOld.(*corev1.Pod)
	if !ok {
		return
	}
	if p, ok := e.ObjectNew.(*corev1.Pod); ok && restarted(was, p) {
		r.enqueue(ctx, p, q)
	}
}

// A pod going away is not a Redis coming back: its successor's events are.
func (restarts) Delete(context.Context, event.DeleteEvent, queue) {}

func (restarts) Generic(context.Context, event.GenericEvent, queue) {}

func (r restarts) enqueue(ctx context.Context, p *corev1.Pod, q queue) {
	instance := p.GetLabels()[contract.LabelInstance]
	if instance == "" || !RedisPods().Matches(labels.Set(p.GetLabels())) {
		return
	}
	r.check()
	l := &v1alpha1.ApiKeyList{}
	if err := r.kube.List(ctx, l, client.InNamespace(p.GetNamespace())); err != nil {
		// The next poll heals the keys; nothing for an operator to do.
		r.log.Debug("Cannot list the ApiKeys of a restarted Redis", "namespace", p.GetNamespace(), "instance", instance, "error", err)
		return
	}
	for _, ak := range l.Items {
		if ref := ak.Spec.ForProvider.InstanceRef; ref != nil && ref.Name == instance {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ak.GetNamespace(), Name: ak.GetName()}})
		}
	}
}

// restarted reports whether the pod now runs a Redis that may be new and
// ready: it became ready, or is ready and was replaced, moved, or had a
// container restart (one quick enough that readiness never failed).
func restarted(was, p *corev1.Pod) bool {
	if !podReady(p) {
		return false
	}
	return !podReady(was) || was.GetUID() != p.GetUID() || was.Status.PodIP != p.Status.PodIP || containerRestarts(was) != containerRestarts(p)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func containerRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}
