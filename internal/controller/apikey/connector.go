package apikey

import (
	"context"
	"time"

	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
)

// A tracker records that an ApiKey uses a provider config.
type tracker interface {
	Track(ctx context.Context, mg resource.ModernManaged) error
}

// A connector produces an external client for one ApiKey: the ACL of the
// Redis the ApiKey lives in.
type connector struct {
	kube client.Client
	// live reads Secrets from the API server, not the cache: a key
	// published a moment ago must never be mistaken for a missing or an
	// older one (that would re-key the user or undo a rotation), and
	// tenants' Secrets must not be held in the provider's memory.
	live client.Reader
	// admin reads the Secrets that say how to administer a Redis (see
	// recentSecrets).
	admin client.Reader
	usage tracker
	// pods reads Redis pods from the cache; nil when the provider may not
	// list them (then an instance is dialled at its Service only).
	pods   client.Reader
	acl    func(redis.Credentials) redis.ACL
	now    func() time.Time
	inUse  inUse
	admins admins
	slots  slots
}

// A responder tells whether its Redis answers in time (redis.Pool's ACLs),
// and whether it is pending: not asked yet, or its first answer on the way.
type responder interface {
	Responsive() bool
	Pending() bool
}

// external returns the external client of an ApiKey administered with a. It
// takes one of the namespace's slots (see slots) when one of a's Redis
// servers has not answered in time, released by Disconnect.
func (c *connector) external(ctx context.Context, cr *v1alpha1.ApiKey, a admin, bestEffort bool) (*external, error) {
	nodes := c.nodes(a)
	answered := func() bool {
		for _, n := range nodes {
			if r, ok := n.acl.(responder); ok && !r.Responsive() {
				return false
			}
		}
		return true
	}
	release := func() {}
	if !answered() {
		var err error
		if release, err = c.slots.take(ctx, cr.GetNamespace(), answered); err != nil {
			if pending(nodes) {
				// A Redis no one heard from yet, which other keys are
				// asking now (a provider that starts): nothing is wrong
				// with this key. A conflict is retried without a
				// condition or an event.
				return nil, kerrors.NewConflict(schema.GroupResource{Group: v1alpha1.Group, Resource: "apikeys"}, cr.GetName(), err)
			}
			return nil, err
		}
	}
	return &external{kube: c.kube, live: c.live, nodes: nodes, admin: a, now: c.now, forget: c.admins.forget, bestEffort: bestEffort, release: release}, nil
}

// pending reports whether every node that has not answered in time is
// pending (see responder).
func pending(nodes []node) bool {
	for _, n := range nodes {
		if r, ok := n.acl.(responder); ok && !r.Responsive() && !r.Pending() {
			return false
		}
	}
	return true
}

func (c *connector) Connect(ctx context.Context, cr *v1alpha1.ApiKey) (managed.TypedExternalClient[*v1alpha1.ApiKey], error) {
	deleting := meta.WasDeleted(cr)
	if !deleting {
		// Not while deleting: in a namespace being deleted the usage
		// cannot be created again (crossplane-runtime #1150), and the
		// ApiKey would never go, nor its namespace.
		// Once per reconcile: a second pass (see seen.created) would read
		// the usage the first made from a cache that may not hold it yet,
		// and fail to create it again.
		if sn := seenIn(ctx); !sn.track() {
			if err := c.usage.Track(ctx, cr); err != nil {
				sn.untrack()
				return nil, errors.Wrap(err, "cannot track provider config usage")
			}
		}
		// Before the user can exist: the Secret holding the admin password
		// of a Redis of the tenant's own must outlive it (see inUse).
		if err := c.inUse.hold(ctx, cr); err != nil {
			return nil, err
		}
	}
	cfg, err := providerConfig(ctx, c.kube, cr)
	if err == nil {
		var a admin
		if a, err = adminFor(ctx, c.kube, c.admin, c.pods, cr, cfg); err == nil {
			if cr.Spec.ForProvider.InstanceRef != nil {
				c.admins.remember(cr.GetUID(), a)
			}
			return c.external(ctx, cr, a, false)
		}
	}
	if !deleting || !gone(err) {
		return nil, err
	}
	// The ProviderConfig, the instance or its auth Secret is gone: its
	// namespace is being deleted, or its instance, and the Redis goes with
	// them, taking the user along. If this provider administered that Redis
	// a moment ago, it deletes the user with what it knew then, as well as
	// it can, so the key stops working before the Redis is gone. (A
	// connectionSecretRef Secret outlives every user made with it, see
	// inUse: gone, it was never used.)
	if a, ok := c.admins.recall(cr.GetUID()); ok {
		return c.external(ctx, cr, a, true)
	}
	return noRedis{}, nil
}
