package apikey

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
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
	live   client.Reader
	usage  tracker
	acl    func(redis.Credentials) redis.ACL
	now    func() time.Time
	inUse  inUse
	admins admins
	slots  slots
}

// A responder tells whether its Redis answers in time (redis.Pool's ACLs).
type responder interface {
	Responsive() bool
}

// external returns the external client of an ApiKey administered with a. It
// takes one of the namespace's slots (see slots) when a's Redis has not
// answered in time, released by Disconnect.
func (c *connector) external(ctx context.Context, cr *v1alpha1.ApiKey, a admin, bestEffort bool) (*external, error) {
	acl := c.acl(a.creds)
	release := func() {}
	if r, ok := acl.(responder); ok && !r.Responsive() {
		var err error
		if release, err = c.slots.take(ctx, cr.GetNamespace()); err != nil {
			return nil, err
		}
	}
	return &external{kube: c.kube, live: c.live, acl: acl, admin: a, now: c.now, forget: c.admins.forget, bestEffort: bestEffort, release: release}, nil
}

func (c *connector) Connect(ctx context.Context, cr *v1alpha1.ApiKey) (managed.TypedExternalClient[*v1alpha1.ApiKey], error) {
	deleting := meta.WasDeleted(cr)
	if !deleting {
		// Not while deleting: in a namespace being deleted the usage
		// cannot be created again (crossplane-runtime #1150), and the
		// ApiKey would never go, nor its namespace.
		if err := c.usage.Track(ctx, cr); err != nil {
			return nil, errors.Wrap(err, "cannot track provider config usage")
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
		if a, err = adminFor(ctx, c.kube, c.live, cr, cfg); err == nil {
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

// admins remembers how each instance ApiKey's Redis was last administered,
// so that an ApiKey deleted with its namespace can still delete its user
// once the instance's auth Secret is gone, while the instance's Redis is
// still going. Entries go when the ApiKey's user is deleted; what a
// restarted provider never saw is not known, and need not be: the Redis goes
// anyway.
type admins struct {
	mu sync.Mutex
	m  map[types.UID]admin
}

func (r *admins) remember(uid types.UID, a admin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[types.UID]admin{}
	}
	r.m[uid] = a
}

func (r *admins) recall(uid types.UID) (admin, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.m[uid]
	return a, ok
}

func (r *admins) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, uid)
}

// noRedis is the external client of an ApiKey being deleted whose Redis is
// gone. It reports that the user does not exist, so deletion completes.
type noRedis struct{}

func (noRedis) Observe(context.Context, *v1alpha1.ApiKey) (managed.ExternalObservation, error) {
	return managed.ExternalObservation{ResourceExists: false}, nil
}

func (noRedis) Create(context.Context, *v1alpha1.ApiKey) (managed.ExternalCreation, error) {
	return managed.ExternalCreation{}, errors.New("cannot create an ACL user in a Redis that is gone")
}

func (noRedis) Update(context.Context, *v1alpha1.ApiKey) (managed.ExternalUpdate, error) {
	return managed.ExternalUpdate{}, errors.New("cannot update an ACL user in a Redis that is gone")
}

func (noRedis) Delete(context.Context, *v1alpha1.ApiKey) (managed.ExternalDelete, error) {
	return managed.ExternalDelete{}, nil
}

func (noRedis) Disconnect(context.Context) error { return nil }

// An external manages the ACL user of one ApiKey. Errors it returns never
// contain a key: keys only travel to Redis as SHA-256 digests and to the
// connection Secret.
type external struct {
	kube  client.Client
	live  client.Reader
	acl   redis.ACL
	admin admin
	now   func() time.Time
	// forget drops what the connector remembers of an ApiKey whose user
	// is gone.
	forget func(types.UID)
	// stale are the REST keys the connection Secret holds, read with the
	// key: removed when the Redis has no HTTP gateway (any more).
	stale []string
	// bestEffort is set while deleting an ApiKey whose instance or its auth
	// Secret is gone: a Redis that cannot be reached went with them.
	bestEffort bool
	// release gives back the namespace's slot, if this client took one.
	release func()
}

func (e *external) Observe(ctx context.Context, cr *v1alpha1.ApiKey) (managed.ExternalObservation, error) {
	name := meta.GetExternalName(cr)
	if err := username(name, e.admin.creds.Username); err != nil {
		return managed.ExternalObservation{}, err
	}
	want, err := rules(cr.Spec.ForProvider)
	if err != nil {
		return managed.ExternalObservation{}, err
	}
	if _, err := gracePeriod(cr.Spec.ForProvider.Rotation); err != nil {
		return managed.ExternalObservation{}, err
	}
	u, exists, err := e.acl.GetUser(ctx, name)
	if err != nil && e.bestEffort {
		exists, err = false, nil
	}
	if err != nil {
		return managed.ExternalObservation{}, err
	}
	if !exists {
		if meta.WasDeleted(cr) {
			e.forget(cr.GetUID())
		}
		return managed.ExternalObservation{ResourceExists: false}, nil
	}
	key, err := e.key(ctx, cr)
	if err != nil {
		return managed.ExternalObservation{}, err
	}
	if meta.WasDeleted(cr) {
		// Someone else's user is left alone: deleting this ApiKey must not
		// delete the user another one (or an admin) made.
		return managed.ExternalObservation{ResourceExists: owned(cr, u, key)}, nil
	}
	if !owned(cr, u, key) {
		return managed.ExternalObservation{}, errTakeover(name)
	}
	if key == "" {
		// The Secret that held the key is gone, so no app can use the user:
		// create it again with a new key.
		return managed.ExternalObservation{ResourceExists: false}, nil
	}

	// The user exists and the Secret holds its key: apps can connect.
	cr.SetConditions(xpv2.Available())
	at := &cr.Status.AtProvider
	at.Username = name
	if at.RotationSerial == nil {
		// Create's status is not persisted (the reconciler re-reads the
		// object after recording the creation), so the first observation
		// records the serial the key was made for.
		s := cr.Spec.ForProvider.Rotation.Serial
		at.RotationSerial = &s
	}
	now := e.now()
	if expired(at, now) && !slices.Contains(u.PasswordHashes, at.PreviousKeySHA256) {
		at.PreviousKeySHA256, at.PreviousKeyExpiresAt = "", nil
	}
	want.PasswordHashes = passwords(at, key, now)

	diff := drift(u, want, e.acl)
	switch serial := cr.Spec.ForProvider.Rotation.Serial; {
	case *at.RotationSerial != serial:
		diff = append(diff, fmt.Sprintf("rotation serial: want %d, got %d", serial, *at.RotationSerial))
	case incomplete(at, key):
		diff = append(diff, fmt.Sprintf("rotation to serial %d incomplete: the Secret still holds the previous key", serial))
	}
	return managed.ExternalObservation{
		ResourceExists:    true,
		ResourceUpToDate:  len(diff) == 0,
		ConnectionDetails: details(name, key, e.admin, e.stale),
		Diff:              strings.Join(diff, "; "),
	}, nil
}

func (e *external) Create(ctx context.Context, cr *v1alpha1.ApiKey) (managed.ExternalCreation, error) {
	name := meta.GetExternalName(cr)
	want, err := rules(cr.Spec.ForProvider)
	if err != nil {
		return managed.ExternalCreation{}, err
	}
	// A user that vanished (Redis restarted without an ACL file) comes back
	// with the key apps already hold.
	key, err := e.key(ctx, cr)
	if err != nil {
		return managed.ExternalCreation{}, err
	}
	// The external name is a tenant-writable annotation: SETUSER ... reset
	// on a user this ApiKey does not own would lock its apps out.
	u, exists, err := e.acl.GetUser(ctx, name)
	if err != nil {
		return managed.ExternalCreation{}, err
	}
	if exists && !owned(cr, u, key) {
		return managed.ExternalCreation{}, errTakeover(name)
	}
	if key == "" {
		if key, err = newKey(); err != nil {
			return managed.ExternalCreation{}, err
		}
	}
	at := &cr.Status.AtProvider
	want.PasswordHashes = passwords(at, key, e.now())
	if err := e.acl.SetUser(ctx, name, want); err != nil {
		return managed.ExternalCreation{}, err
	}
	at.Username = name
	cr.SetConditions(xpv2.Creating())
	return managed.ExternalCreation{ConnectionDetails: details(name, key, e.admin, e.stale)}, nil
}

func (e *external) Update(ctx context.Context, cr *v1alpha1.ApiKey) (managed.ExternalUpdate, error) {
	name := meta.GetExternalName(cr)
	want, err := rules(cr.Spec.ForProvider)
	if err != nil {
		return managed.ExternalUpdate{}, err
	}
	key, err := e.key(ctx, cr)
	if err != nil {
		return managed.ExternalUpdate{}, err
	}
	if key == "" {
		return managed.ExternalUpdate{}, errors.New("cannot update ACL user: its connection Secret holds no key")
	}

	at := &cr.Status.AtProvider
	now := e.now()
	if rotating(cr, key) {
		if key, err = e.rotate(ctx, cr, key, now); err != nil {
			return managed.ExternalUpdate{}, err
		}
	}
	if expired(at, now) {
		at.PreviousKeySHA256, at.PreviousKeyExpiresAt = "", nil
	}
	want.PasswordHashes = passwords(at, key, now)
	if err := e.acl.SetUser(ctx, name, want); err != nil {
		return managed.ExternalUpdate{}, err
	}
	return managed.ExternalUpdate{ConnectionDetails: details(name, key, e.admin, e.stale)}, nil
}

func (e *external) Delete(ctx context.Context, cr *v1alpha1.ApiKey) (managed.ExternalDelete, error) {
	if err := e.acl.DeleteUser(ctx, meta.GetExternalName(cr)); err != nil && !e.bestEffort {
		return managed.ExternalDelete{}, err
	}
	e.forget(cr.GetUID())
	// The Secret is owned by the ApiKey and garbage collected with it; it is
	// deleted here too so the key stops being readable as soon as the user
	// is gone.
	s, ok, err := e.secret(ctx, cr)
	if err != nil || !ok {
		return managed.ExternalDelete{}, err
	}
	return managed.ExternalDelete{}, errors.Wrapf(client.IgnoreNotFound(e.kube.Delete(ctx, s)), "cannot delete connection Secret %q", s.GetName())
}

func (e *external) Disconnect(context.Context) error {
	if e.release != nil {
		e.release()
	}
	return nil
}

// secret returns the ApiKey's connection Secret, and whether it exists and
// the ApiKey controls it.
func (e *external) secret(ctx context.Context, cr *v1alpha1.ApiKey) (*corev1.Secret, bool, error) {
	ref := cr.GetWriteConnectionSecretToReference()
	if ref == nil || ref.Name == "" {
		return nil, false, errors.New("cannot manage a key without spec.writeConnectionSecretToRef: the Secret is the only place the key is kept")
	}
	s := &corev1.Secret{}
	err := e.live.Get(ctx, types.NamespacedName{Namespace: cr.GetNamespace(), Name: ref.Name}, s)
	if kerrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errors.Wrapf(err, "cannot get connection Secret %q", ref.Name)
	}
	return s, metav1.IsControlledBy(s, cr), nil
}

// key returns the key the connection Secret holds, or "" when there is none,
// and records which REST keys the Secret holds.
func (e *external) key(ctx context.Context, cr *v1alpha1.ApiKey) (string, error) {
	s, ok, err := e.secret(ctx, cr)
	if err != nil || !ok {
		return "", err
	}
	e.stale = nil
	for _, k := range restKeys {
		if _, ok := s.Data[k]; ok {
			e.stale = append(e.stale, k)
		}
	}
	return string(s.Data[contract.KeyPassword]), nil
}

// owned reports whether an existing ACL user belongs to the ApiKey: it
// accepts the key of the ApiKey's Secret, or has the ApiKey's default name
// (namespace, name and UID make it the ApiKey's own), or the ApiKey recorded
// managing it under this name before. A user that fails all three was made
// by someone else, say another ApiKey whose external name is set to ours.
func owned(cr *v1alpha1.ApiKey, u *redis.User, key string) bool {
	name := meta.GetExternalName(cr)
	switch {
	case key != "" && slices.Contains(u.PasswordHashes, hash(key)):
		return true
	case name == ExternalName(cr.GetNamespace(), cr.GetName(), string(cr.GetUID())):
		return true
	default:
		return cr.Status.AtProvider.Username == name
	}
}

// errTakeover is the error for an ACL user the ApiKey does not own.
func errTakeover(name string) error {
	return errors.Errorf("cannot manage ACL user %q: it exists and accepts no key of this ApiKey; another ApiKey or an administrator owns it, so choose another external name (or delete the user)", name)
}

// drift describes how the user differs from the rules, without revealing
// password digests. Command rules are compared in Redis's compacted form,
// known once the provider applied the same rules to this Redis; until then
// they count as drift, and the next Update learns the form.
func drift(u *redis.User, r redis.Rules, acl redis.ACL) []string {
	want := r.User(u.Name, "")
	var d []string
	if !u.Enabled || u.NoPass {
		d = append(d, "user is off or accepts any password")
	}
	if !slices.Equal(u.PasswordHashes, want.PasswordHashes) {
		d = append(d, fmt.Sprintf("passwords: want %d, got %d (or different ones)", len(want.PasswordHashes), len(u.PasswordHashes)))
	}
	if !slices.Equal(u.KeyPatterns, want.KeyPatterns) {
		d = append(d, fmt.Sprintf("key patterns: want %q, got %q", want.KeyPatterns, u.KeyPatterns))
	}
	if !slices.Equal(u.Channels, want.Channels) {
		d = append(d, fmt.Sprintf("channels: want %q, got %q", want.Channels, u.Channels))
	}
	cmds, known := acl.Commands(r)
	switch {
	case !known:
		d = append(d, fmt.Sprintf("commands: %q not yet applied to this Redis", r.CommandRules()))
	case cmds != u.Commands:
		d = append(d, fmt.Sprintf("commands: want %q, got %q", cmds, u.Commands))
	}
	return d
}
