package apikey

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
)

// quietManager is the manager the managed reconciler is built with: its
// client does not send writes that would change nothing (see quietClient).
type quietManager struct {
	ctrl.Manager
}

func (m quietManager) GetClient() client.Client { return quietClient{Client: m.Manager.GetClient()} }

// A quietClient skips ApiKey status updates that change nothing. The managed
// reconciler writes the status at the end of every reconcile, even when it
// found the key as it should be; at a provider's start (every key
// re-verified) that would be one write per ApiKey for nothing. The API
// server does not store such a write, but still has to take it.
type quietClient struct {
	client.Client
}

// Create does not create a connection Secret with nothing in it. The managed
// reconciler publishes what an observation found even when it found nothing
// (a user about to be created): an empty Secret, patched with the key a
// moment later, two writes where one does.
func (c quietClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return c.Client.Create(ctx, obj, opts...)
	}
	if len(s.Data) == 0 && len(s.StringData) == 0 && controlledByApiKey(s) {
		return nil
	}
	err := c.Client.Create(ctx, obj, opts...)
	c.wrote(ctx, s, err)
	return err
}

// Get reads a Secret once per reconcile (see seenSecrets): the connection
// publisher reads the Secret the reconcile's Observe or Create just read.
func (c quietClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	// A second pass starts from the ApiKey as the first left it, which
	// the cache may not hold yet.
	if cr, ok := obj.(*v1alpha1.ApiKey); ok && len(opts) == 0 && seenIn(ctx).apiKey(key, cr) {
		return nil
	}
	return seenSecrets{live: c.Client}.Get(ctx, key, obj, opts...)
}

// Patch remembers the Secret as the API server answered it.
func (c quietClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	err := c.Client.Patch(ctx, obj, patch, opts...)
	if s, ok := obj.(*corev1.Secret); ok {
		c.wrote(ctx, s, err)
	}
	return err
}

// Delete forgets a Secret: the next read asks the API server.
func (c quietClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if s, ok := obj.(*corev1.Secret); ok {
		seenIn(ctx).forget(client.ObjectKeyFromObject(s))
	}
	return c.Client.Delete(ctx, obj, opts...)
}

// wrote remembers a Secret the API server answered a write with; after a
// failed write, the next read asks the API server.
func (c quietClient) wrote(ctx context.Context, s *corev1.Secret, err error) {
	if err != nil {
		seenIn(ctx).forget(client.ObjectKeyFromObject(s))
		return
	}
	seenIn(ctx).record(client.ObjectKeyFromObject(s), s)
}

func controlledByApiKey(o metav1.Object) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.Kind == v1alpha1.ApiKeyKind && ref.APIVersion == v1alpha1.ApiKeyGroupVersionKind.GroupVersion().String()
}

// Update does not write an ApiKey whose only change is a creation
// annotation (crossplane.io/external-create-pending, -succeeded, -failed).
// They tell the managed reconciler whether a user whose name only Create
// knows was made; an ApiKey's user is named before Create
// (WithDeterministicExternalName), so they protect nothing here, and cost
// two writes per new ApiKey.
func (c quietClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if s, ok := obj.(*corev1.Secret); ok {
		seenIn(ctx).forget(client.ObjectKeyFromObject(s))
	}
	cr, ok := obj.(*v1alpha1.ApiKey)
	if !ok || len(opts) > 0 {
		return c.Client.Update(ctx, obj, opts...)
	}
	// What the API server holds: as this reconcile wrote it (the external
	// name and finalizer, a moment ago), or as the cache has it, when
	// either is the version cr was made from.
	cur := &v1alpha1.ApiKey{}
	if seenIn(ctx).written(cr, cur) || (c.Get(ctx, client.ObjectKeyFromObject(cr), cur) == nil && cur.GetResourceVersion() == cr.GetResourceVersion()) {
		if sameButCreation(cur, cr) {
			return nil
		}
	}
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return err
	}
	seenIn(ctx).wroteKey(cr)
	return nil
}

// sameButCreation reports whether two ApiKeys differ in their creation
// annotations and status at most.
func sameButCreation(a, b *v1alpha1.ApiKey) bool {
	strip := func(ak *v1alpha1.ApiKey) *v1alpha1.ApiKey {
		ak = ak.DeepCopy()
		ak.Status = v1alpha1.ApiKeyStatus{}
		an := ak.GetAnnotations()
		for _, k := range []string{meta.AnnotationKeyExternalCreatePending, meta.AnnotationKeyExternalCreateSucceeded, meta.AnnotationKeyExternalCreateFailed} {
			delete(an, k)
		}
		if len(an) == 0 {
			an = nil
		}
		ak.SetAnnotations(an)
		return ak
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

func (c quietClient) Status() client.SubResourceWriter {
	return quietStatus{SubResourceWriter: c.Client.Status(), cache: c.Client}
}

type quietStatus struct {
	client.SubResourceWriter
	cache client.Reader
}

// Update sends the status unless the cache holds the same version of the
// ApiKey with the same status. A cache that is behind has an older version:
// the update is sent, and fails on a conflict as it would have.
func (s quietStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if cr, ok := obj.(*v1alpha1.ApiKey); ok && len(opts) == 0 {
		if seenIn(ctx).deferStatus(cr) {
			// The second pass writes what it observes.
			return nil
		}
		cur := &v1alpha1.ApiKey{}
		if err := s.cache.Get(ctx, client.ObjectKeyFromObject(cr), cur); err == nil &&
			cur.GetResourceVersion() == cr.GetResourceVersion() && equality.Semantic.DeepEqual(cur.Status, cr.Status) {
			return nil
		}
	}
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}
