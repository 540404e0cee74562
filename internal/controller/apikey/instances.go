package apikey

import (
	"context"
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/controller"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// instanceFields are the status fields of a RedisHttpInstance an ApiKey's
// Secret is made from, or its admin connection depends on: the endpoint and
// port, the REST gateway's URLs (HTTP switched on or off), the master (a
// failover).
var instanceFields = [][]string{
	{"status", "endpoint"}, {"status", "port"},
	strings.Split(contract.StatusRESTURL, "."), strings.Split(contract.StatusRESTURLInCluster, "."),
	strings.Split(contract.StatusMaster, "."),
}

// instanceChanges reconciles an instance's ApiKeys as soon as one of
// instanceFields changes, instead of at their next poll: turning HTTP on
// puts UPSTASH_REDIS_REST_URL and the token into every ApiKey's Secret at
// once, turning it off removes them at once.
type instanceChanges struct {
	kube   client.Reader
	events chan<- event.GenericEvent
	log    logging.Logger
}

// watchInstances feeds events with the ApiKeys of changed instances, once
// the RedisHttpInstance CRD exists (a provider serving only
// connectionSecretRef keys may run without it).
func watchInstances(mgr ctrl.Manager, o controller.Options, events chan<- event.GenericEvent) error {
	ic := instanceChanges{kube: mgr.GetClient(), events: events, log: o.Logger.WithValues("controller", "apikey-instances")}
	start := func(ctx context.Context) error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(InstanceGroupVersionKind)
		inf, err := mgr.GetCache().GetInformer(ctx, u)
		if err != nil {
			ic.log.Info("Cannot watch RedisHttpInstances: ApiKeys will see HTTP switched on or off at their next poll, not at once", "error", err)
			return nil
		}
		_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{UpdateFunc: ic.update})
		return err
	}
	if o.Gate != nil {
		o.Gate.Register(func() { _ = start(context.Background()) }, InstanceGroupVersionKind)
		return nil
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if err := start(ctx); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}))
}

func (ic instanceChanges) update(oldObj, newObj any) {
	was, ok := oldObj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	in, ok := newObj.(*unstructured.Unstructured)
	if !ok || !changed(was, in) {
		return
	}
	l := &v1alpha1.ApiKeyList{}
	if err := ic.kube.List(context.Background(), l, client.InNamespace(in.GetNamespace())); err != nil {
		// The next poll brings the change; nothing for an operator to do.
		ic.log.Debug("Cannot list the ApiKeys of a changed instance", "namespace", in.GetNamespace(), "instance", in.GetName(), "error", err)
		return
	}
	for i := range l.Items {
		if ref := l.Items[i].Spec.ForProvider.InstanceRef; ref != nil && ref.Name == in.GetName() {
			ic.events <- event.GenericEvent{Object: &l.Items[i]}
		}
	}
}

// changed reports whether one of instanceFields differs.
func changed(was, in *unstructured.Unstructured) bool {
	for _, f := range instanceFields {
		a, _, _ := unstructured.NestedFieldNoCopy(was.Object, f...)
		b, _, _ := unstructured.NestedFieldNoCopy(in.Object, f...)
		if !reflect.DeepEqual(a, b) {
			return true
		}
	}
	return false
}

// cachedInstances reads RedisHttpInstances from the manager's cache, which
// holds them anyway (see watchInstances), once it has synced: a live read
// per reconcile was two reads per new ApiKey. Until then, and when the
// provider may not watch instances, they are read from the API server.
type cachedInstances struct {
	client.Client
	cache cache.Cache
}

func (c cachedInstances) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if u, ok := obj.(*unstructured.Unstructured); ok && u.GroupVersionKind() == InstanceGroupVersionKind {
		if inf, err := c.cache.GetInformer(ctx, u, cache.BlockUntilSynced(false)); err == nil && inf.HasSynced() {
			return c.cache.Get(ctx, key, obj, opts...)
		}
	}
	return c.Client.Get(ctx, key, obj, opts...)
}
