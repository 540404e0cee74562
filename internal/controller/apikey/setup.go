package apikey

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	kevent "sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"

	"github.com/crossplane/crossplane-runtime/v2/pkg/controller"
	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/event"
	"github.com/crossplane/crossplane-runtime/v2/pkg/feature"
	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	"github.com/crossplane/crossplane-runtime/v2/pkg/statemetrics"
)

// Config is what the platform sets for every ApiKey.
type Config struct {
	// Endpoints restricts which Redis servers a connectionSecretRef may
	// make the provider dial. The zero value allows any.
	Endpoints redis.Endpoints
}

// SetupGated adds the ApiKey controller once the ApiKey CRD exists.
func SetupGated(mgr ctrl.Manager, o controller.Options, cfg Config) error {
	o.Gate.Register(func() {
		if err := Setup(mgr, o, cfg); err != nil {
			mgr.GetLogger().Error(err, "cannot set up ApiKey controller")
			panic(err)
		}
	}, v1alpha1.ApiKeyGroupVersionKind, v1alpha1.ProviderConfigUsageGroupVersionKind)
	return nil
}

// Setup adds a controller that reconciles ApiKey managed resources.
func Setup(mgr ctrl.Manager, o controller.Options, cfg Config) error {
	name := managed.ControllerName(v1alpha1.ApiKeyGroupKind)

	// Users made or deleted here are seen at once, and so is a Redis
	// restart once the pool reconnects or a Redis pod becomes ready (see
	// restarts); other changes behind the provider's back are seen within
	// half a poll.
	pool := redis.NewPool(
		redis.WithSnapshotMaxAge(max(o.PollInterval/2, 500*time.Millisecond)),
		redis.WithEndpoints(cfg.Endpoints),
	)
	// The pool evicts idle Redis servers while the manager runs, and
	// closes every connection when it stops.
	if err := mgr.Add(pool); err != nil {
		return errors.Wrap(err, "cannot add the Redis connection pool to the manager")
	}
	// With pods, the provider heals keys when a Redis pod turns ready, and
	// reaches every pod of an instance with replicas.
	pods := podAccess(mgr.GetConfig())
	policies := o.Features != nil && o.Features.Enabled(feature.EnableBetaManagementPolicies)
	inUse := inUse{kube: mgr.GetClient(), live: mgr.GetAPIReader(), policies: policies}
	c := &connector{
		kube:  cachedInstances{Client: mgr.GetClient(), cache: mgr.GetCache()},
		live:  seenSecrets{live: mgr.GetAPIReader()},
		admin: &recentSecrets{live: mgr.GetAPIReader(), now: time.Now},
		inUse: inUse,
		usage: resource.NewProviderConfigUsageTracker(mgr.GetClient(), &v1alpha1.ProviderConfigUsage{}),
		acl:   pool.ACL,
		now:   time.Now,
		// A quarter of the workers, at least 2, per namespace for Redis
		// servers that do not answer.
		slots: slots{max: max(2, o.MaxConcurrentReconciles/4)},
	}
	if pods {
		c.pods = mgr.GetClient()
	}

	rec := event.NewAPIRecorder(mgr.GetEventRecorderFor(name)) //nolint:staticcheck // crossplane-runtime v2.4 recorders still take the old events API.
	log := o.Logger.WithValues("controller", name)
	// An ApiKey the provider cannot decode is not reconciled: tell its
	// owner and the operator.
	u := newUndecodable(mgr.GetAPIReader(), mgr.GetClient(), log, rec)
	if err := mgr.Add(u); err != nil {
		return errors.Wrap(err, "cannot add the undecodable ApiKey reporter to the manager")
	}
	v1alpha1.OnUndecodable(u.report)

	opts := []managed.ReconcilerOption{
		managed.WithTypedExternalConnector[*v1alpha1.ApiKey](c),
		managed.WithInitializers(externalName{kube: mgr.GetClient()}),
		managed.WithFinalizer(finalizer{Finalizer: resource.NewAPIFinalizer(mgr.GetClient(), managed.FinalizerName), inUse: inUse}),
		managed.WithLogger(log),
		managed.WithPollInterval(o.PollInterval),
		managed.WithPollIntervalHook(pollUntilGraceEnds(time.Now)),
		managed.WithRecorder(rec),
		// ACL SETUSER is idempotent and the user's name is fixed before
		// Create, so an interrupted Create is safely retried, and Redis
		// reads its own writes: no grace period for existence is needed.
		managed.WithDeterministicExternalName(true),
		managed.WithCreationGracePeriod(0),
	}
	if policies {
		opts = append(opts, managed.WithManagementPolicies())
	}
	if o.MetricOptions != nil && o.MetricOptions.MRMetrics != nil {
		opts = append(opts, managed.WithMetricRecorder(o.MetricOptions.MRMetrics))
	}
	if o.MetricOptions != nil && o.MetricOptions.MRStateMetrics != nil {
		sm := statemetrics.NewMRStateRecorder(mgr.GetClient(), o.Logger, o.MetricOptions.MRStateMetrics, &v1alpha1.ApiKeyList{}, o.MetricOptions.PollStateMetricInterval)
		if err := mgr.Add(sm); err != nil {
			return errors.Wrap(err, "cannot register ApiKey state metrics recorder")
		}
	}

	r := managed.NewReconciler(quietManager{Manager: mgr}, resource.ManagedKind(v1alpha1.ApiKeyGroupVersionKind), opts...)
	co := o.ForControllerRuntime()
	co.NewQueue = func(name string, perItem workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		return newTurnsQueue(name, perItem, o.GlobalRateLimiter)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(name).
		WithOptions(co).
		For(&v1alpha1.ApiKey{}, builder.WithPredicates(notOwnWrites(), resource.DesiredStateChanged()))
	// HTTP switched on or off (or a failover) reaches the Secrets at once.
	changes := make(chan kevent.GenericEvent, 1024)
	b = b.WatchesRawSource(source.Channel(changes, &handler.EnqueueRequestForObject{}))
	if err := watchInstances(mgr, o, changes); err != nil {
		return errors.Wrap(err, "cannot watch RedisHttpInstances")
	}
	if pods {
		b = b.Watches(&corev1.Pod{}, restarts{kube: mgr.GetClient(), check: pool.CheckRestarts, log: o.Logger.WithValues("controller", name)})
	} else {
		o.Logger.Info("Cannot list and watch pods: ApiKeys will heal after a Redis restart at their next poll, not at once. Grant pods get/list/watch as examples/provider/rbac.yaml does.", "controller", name)
	}
	// The global rate limit is kept by the work queue (see turns.go).
	return b.Complete(rememberingSecrets(r))
}

// externalName names the ACL user of a new ApiKey after its namespace, name
// and UID: stable, unique in a Redis shared by several namespaces, and never
// "default" (the name has two dots). The UID part makes a re-created ApiKey a
// new user. The managed resource finalizer, which the reconciler adds next,
// is added in the same write: one write instead of two per new ApiKey.
type externalName struct{ kube client.Client }

func (e externalName) Initialize(ctx context.Context, mg resource.Managed) error {
	if meta.GetExternalName(mg) != "" {
		return nil
	}
	meta.SetExternalName(mg, ExternalName(mg.GetNamespace(), mg.GetName(), string(mg.GetUID())))
	if !meta.WasDeleted(mg) {
		meta.AddFinalizer(mg, managed.FinalizerName)
	}
	if err := e.kube.Update(ctx, mg); err != nil {
		return errors.Wrap(err, "cannot set the external name of ApiKey")
	}
	if ak, ok := mg.(*v1alpha1.ApiKey); ok {
		seenIn(ctx).wroteKey(ak)
	}
	return nil
}

// ExternalName returns the default ACL user name of an ApiKey.
func ExternalName(namespace, name, uid string) string {
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s.%s.%s", namespace, name, uid)
}
