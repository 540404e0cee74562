package apikey

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// An external manages the ACL user of one ApiKey, on every Redis it must be
// on (see node). Errors it returns never contain a key: keys only travel to
// Redis as SHA-256 digests and to the connection Secret.
type external struct {
	kube  client.Client
	live  client.Reader
	nodes []node
	admin admin
	now   func() time.Time
	// forget drops what the connector remembers of an ApiKey whose user
	// is gone.
	forget func(types.UID)
	// bestEffort is set while deleting an ApiKey whose instance or its auth
	// Secret is gone: a Redis that cannot be reached went with them.
	bestEffort bool
	// release gives back the namespace's slot, if this client took one.
	release func()
}

// users returns the user called name on each node (nil where it does not
// exist), in the order of e.nodes. Nodes that are not ready are skipped
// (nil too), unless all is set: a deletion must reach every node.
func (e *external) users(ctx context.Context, name string, all bool) ([]*redis.User, error) {
	users := make([]*redis.User, len(e.nodes))
	for i, n := range e.nodes {
		if !n.ready && !all {
			continue
		}
		u, exists, err := n.acl.GetUser(ctx, name)
		switch {
		case err != nil && e.bestEffort:
		case err != nil:
			return nil, n.wrap(err)
		case exists:
			users[i] = u
		}
	}
	return users, nil
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
	deleting := meta.WasDeleted(cr)
	users, err := e.users(ctx, name, deleting)
	if err != nil {
		return managed.ExternalObservation{}, err
	}
	if !slices.ContainsFunc(users, func(u *redis.User) bool { return u != nil }) {
		if deleting {
			e.forget(cr.GetUID())
		}
		return managed.ExternalObservation{ResourceExists: false}, nil
	}
	p, err := e.published(ctx, cr)
	if err != nil {
		return managed.ExternalObservation{}, err
	}
	key := p.key
	for _, u := range users {
		switch {
		case u == nil:
		case deleting && owned(cr, u, key):
			return managed.ExternalObservation{ResourceExists: true}, nil
		case !owned(cr, u, key):
			// Someone else's user is left alone: deleting this ApiKey must
			// not delete the user another one (or an admin) made.
			if deleting {
				continue
			}
			return managed.ExternalObservation{}, errTakeover(name)
		}
	}
	if deleting {
		return managed.ExternalObservation{ResourceExists: false}, nil
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
	if expired(at, now) && !slices.ContainsFunc(users, func(u *redis.User) bool { return u != nil && slices.Contains(u.PasswordHashes, at.PreviousKeySHA256) }) {
		at.PreviousKeySHA256, at.PreviousKeyExpiresAt = "", nil
	}
	want.PasswordHashes = passwords(at, key, now)

	var diff []string
	for i, n := range e.nodes {
		if !n.ready {
			continue
		}
		if users[i] == nil {
			diff = append(diff, n.describe([]string{"user is missing"})...)
			continue
		}
		cmds, err := n.acl.Commands(ctx, want)
		if err != nil {
			return managed.ExternalObservation{}, n.wrap(err)
		}
		diff = append(diff, n.describe(drift(users[i], want, cmds))...)
	}
	switch serial := cr.Spec.ForProvider.Rotation.Serial; {
	case *at.RotationSerial != serial:
		diff = append(diff, fmt.Sprintf("rotation serial: want %d, got %d", serial, *at.RotationSerial))
	case incomplete(at, key):
		diff = append(diff, fmt.Sprintf("rotation to serial %d incomplete: the Secret still holds the previous key", serial))
	}
	return managed.ExternalObservation{
		ResourceExists:    true,
		ResourceUpToDate:  len(diff) == 0,
		ConnectionDetails: details(name, key, e.admin, p.rest),
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
	p, err := e.published(ctx, cr)
	if err != nil {
		return managed.ExternalCreation{}, err
	}
	key := p.key
	// The external name is a tenant-writable annotation: SETUSER ... reset
	// on a user this ApiKey does not own would lock its apps out.
	users, err := e.users(ctx, name, false)
	if err != nil {
		return managed.ExternalCreation{}, err
	}
	if slices.ContainsFunc(users, func(u *redis.User) bool { return u != nil && !owned(cr, u, key) }) {
		return managed.ExternalCreation{}, errTakeover(name)
	}
	if key == "" {
		if key, err = newKey(); err != nil {
			return managed.ExternalCreation{}, err
		}
	}
	at := &cr.Status.AtProvider
	want.PasswordHashes = passwords(at, key, e.now())
	if err := e.setUser(ctx, name, want); err != nil {
		return managed.ExternalCreation{}, err
	}
	at.Username = name
	cr.SetConditions(xpv2.Creating())
	seenIn(ctx).create()
	return managed.ExternalCreation{ConnectionDetails: details(name, key, e.admin, p.rest)}, nil
}

func (e *external) Update(ctx context.Context, cr *v1alpha1.ApiKey) (managed.ExternalUpdate, error) {
	name := meta.GetExternalName(cr)
	want, err := rules(cr.Spec.ForProvider)
	if err != nil {
		return managed.ExternalUpdate{}, err
	}
	p, err := e.published(ctx, cr)
	if err != nil {
		return managed.ExternalUpdate{}, err
	}
	key := p.key
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
	if err := e.setUser(ctx, name, want); err != nil {
		return managed.ExternalUpdate{}, err
	}
	return managed.ExternalUpdate{ConnectionDetails: details(name, key, e.admin, p.rest)}, nil
}

// setUser makes the user what r says on every ready node.
func (e *external) setUser(ctx context.Context, name string, r redis.Rules) error {
	for _, n := range e.nodes {
		if !n.ready {
			continue
		}
		if err := n.acl.SetUser(ctx, name, r); err != nil {
			return n.wrap(err)
		}
	}
	return nil
}

func (e *external) Delete(ctx context.Context, cr *v1alpha1.ApiKey) (managed.ExternalDelete, error) {
	// Every node, ready or not: a node that cannot be reached keeps the
	// ApiKey until it can, so a Redis that was only cut off never comes
	// back with a deleted key. The others lose the user at once.
	var errs []error
	for _, n := range e.nodes {
		if err := n.acl.DeleteUser(ctx, meta.GetExternalName(cr)); err != nil && !e.bestEffort {
			errs = append(errs, n.wrap(err))
		}
	}
	if len(errs) > 0 {
		return managed.ExternalDelete{}, errors.Join(errs...)
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

// A published is what an ApiKey's connection Secret holds.
type published struct {
	// key is the ApiKey's key, "" when the Secret holds none (or is gone).
	key string
	// rest are the REST keys of an HTTP gateway the Secret holds: removed
	// when the Redis has no gateway (any more).
	rest []string
}

// published returns what the ApiKey's connection Secret holds.
func (e *external) published(ctx context.Context, cr *v1alpha1.ApiKey) (published, error) {
	s, ok, err := e.secret(ctx, cr)
	if err != nil || !ok {
		return published{}, err
	}
	p := published{key: string(s.Data[contract.KeyPassword])}
	for _, k := range restKeys {
		if _, ok := s.Data[k]; ok {
			p.rest = append(p.rest, k)
		}
	}
	return p, nil
}
