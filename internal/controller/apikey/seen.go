package apikey

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// One reconcile of a new ApiKey read its connection Secret three times from
// the API server (before the user exists, to publish nothing; in Create, for
// a key apps already hold; to publish the new key), and an up to date ApiKey
// twice (in Observe, then to compare what it would publish): a third of the
// provider's requests at a burst of new keys. Secrets are never cached (see
// connector.live), so a reconcile remembers what it read or wrote of them
// itself, in its context, and forgets it when it ends: nothing is held
// longer than the reconcile that read it, and a Secret changed behind the
// provider's back is seen by the next reconcile, as before.

type seenKey struct{}

// seen holds the Secrets one reconcile read or wrote, by name: nil for a
// Secret it found missing.
type seen struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*corev1.Secret

	// A reconcile that created a user reconciles again at once (see
	// again): the managed reconciler would write the status Creating and
	// requeue, to observe the new user a second later, from a cache that
	// may not hold its own writes yet (a conflict, and again). created and
	// tracked say what the first pass did; key is the ApiKey as it left it.
	created, tracked, again bool
	key                     *v1alpha1.ApiKey

	// wrote is the ApiKey as this reconcile last wrote it (see
	// quietClient.Update).
	wrote *v1alpha1.ApiKey
}

// withSeen returns a context in which the Secrets read or written through a
// seenSecrets or a quietClient are remembered until the context is done
// with.
func withSeen(ctx context.Context) context.Context {
	return context.WithValue(ctx, seenKey{}, &seen{m: map[types.NamespacedName]*corev1.Secret{}})
}

// rememberingSecrets wraps r so that each reconcile remembers the Secrets it
// read or wrote (see withSeen), and reconciles an ApiKey whose user it just
// created a second time at once (see seen.created).
func rememberingSecrets(r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		ctx = withSeen(ctx)
		res, err := r.Reconcile(ctx, req)
		if err == nil && seenIn(ctx).secondPass() {
			return r.Reconcile(ctx, req)
		}
		return res, err
	})
}

// create records that the reconcile created the user.
func (sn *seen) create() {
	if sn == nil {
		return
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.created = true
}

// track reports whether the reconcile already recorded the ApiKey's
// provider config usage, and records that it did.
func (sn *seen) track() bool {
	if sn == nil {
		return false
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	was := sn.tracked
	sn.tracked = true
	return was
}

// untrack records that recording the provider config usage failed.
func (sn *seen) untrack() {
	if sn == nil {
		return
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.tracked = false
}

// deferStatus reports whether the status cr is about to be written is the one a
// first pass that created the user ends with (Creating, and the reconcile
// succeeded), and if so keeps cr for the second pass, which writes the
// status it observes instead.
func (sn *seen) deferStatus(cr *v1alpha1.ApiKey) bool {
	if sn == nil {
		return false
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if !sn.created || sn.again || cr.GetCondition(xpv2.TypeReady).Reason != xpv2.ReasonCreating || cr.GetCondition(xpv2.TypeSynced).Reason != xpv2.ReasonReconcileSuccess {
		return false
	}
	sn.key, sn.again = cr.DeepCopy(), true
	return true
}

// secondPass reports whether the reconcile goes on with a second pass, once.
func (sn *seen) secondPass() bool {
	if sn == nil {
		return false
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	again := sn.again
	sn.created, sn.again = false, false
	return again
}

// apiKey copies the ApiKey called key as the first pass left it into cr,
// and reports whether there is one.
func (sn *seen) apiKey(key types.NamespacedName, cr *v1alpha1.ApiKey) bool {
	if sn == nil {
		return false
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.key == nil || client.ObjectKeyFromObject(sn.key) != key {
		return false
	}
	sn.key.DeepCopyInto(cr)
	return true
}

func seenIn(ctx context.Context) *seen {
	s, _ := ctx.Value(seenKey{}).(*seen)
	return s
}

// get copies the Secret called key into s and reports whether it was seen,
// and whether it existed.
func (sn *seen) get(key types.NamespacedName, s *corev1.Secret) (known, found bool) {
	if sn == nil {
		return false, false
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	cur, known := sn.m[key]
	if cur != nil {
		cur.DeepCopyInto(s)
	}
	return known, cur != nil
}

// record remembers s as the Secret called key; nil when it does not exist.
func (sn *seen) record(key types.NamespacedName, s *corev1.Secret) {
	if sn == nil {
		return
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if s != nil {
		s = s.DeepCopy()
	}
	sn.m[key] = s
}

// forget drops what was seen of the Secret called key: the next read asks
// the API server.
func (sn *seen) forget(key types.NamespacedName) {
	if sn == nil {
		return
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	delete(sn.m, key)
}

// A seenSecrets reads Secrets from the API server once per reconcile: again
// within the same reconcile, what it read (or wrote, see quietClient) is the
// answer. Outside a reconcile (no seen in the context) every read is live.
type seenSecrets struct {
	live client.Reader
}

func (r seenSecrets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s, ok := obj.(*corev1.Secret)
	if !ok || len(opts) > 0 {
		return r.live.Get(ctx, key, obj, opts...)
	}
	sn := seenIn(ctx)
	if known, found := sn.get(key, s); known {
		if !found {
			return kerrors.NewNotFound(corev1.Resource("secrets"), key.Name)
		}
		return nil
	}
	err := r.live.Get(ctx, key, s)
	switch {
	case err == nil:
		sn.record(key, s)
	case kerrors.IsNotFound(err):
		sn.record(key, nil)
	}
	return err
}

func (r seenSecrets) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.live.List(ctx, list, opts...)
}

// wroteKey records cr as the API server answered the reconcile's write of it.
func (sn *seen) wroteKey(cr *v1alpha1.ApiKey) {
	if sn == nil {
		return
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.wrote = cr.DeepCopy()
}

// written copies the ApiKey as this reconcile last wrote it into cur, and
// reports whether there is one of cr's name and resource version: what the
// API server holds, when the cache may not hold it yet.
func (sn *seen) written(cr, cur *v1alpha1.ApiKey) bool {
	if sn == nil {
		return false
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.wrote == nil || client.ObjectKeyFromObject(sn.wrote) != client.ObjectKeyFromObject(cr) || sn.wrote.GetResourceVersion() != cr.GetResourceVersion() {
		return false
	}
	sn.wrote.DeepCopyInto(cur)
	return true
}
