package apikey

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// InUseFinalizer keeps a connectionSecretRef Secret (the admin credentials
// of a tenant's own Redis) from going while an ApiKey may need it to delete
// its ACL user: deleting the Secret, or its namespace, waits until the users
// are gone, whatever restarts the provider goes through meanwhile.
const InUseFinalizer = "apikey.redishttp.io/in-use"

// inUse protects the Secret an ApiKey administers its Redis with before the
// ApiKey's user can exist, and releases it once no ApiKey uses it.
//
// Which ApiKeys use a Secret is recorded in their status
// (atProvider.connectionSecretInUse), written before their user can be
// created and cleared before they release the Secret. An ApiKey that lets go
// of a Secret first clears its record, then asks the API server which
// ApiKeys still record the Secret, and removes the finalizer if none does:
// of ApiKeys letting go at once (their namespace is being deleted), the last
// to ask sees no one left, whatever order their writes and reads interleave
// in. An ApiKey keeps its own finalizer, and the Secrets to release in its
// status, until it has let go, so a restart at any point only repeats work.
type inUse struct {
	// kube writes ApiKey status and patches Secrets.
	kube client.Client
	// live reads Secrets (never cached) and lists ApiKeys as the API server
	// has them: a cache could still show a record another ApiKey cleared.
	live client.Reader
	// policies is whether management policies are enabled.
	policies bool
}

// hold protects the Secret a live ApiKey names, when the ApiKey would delete
// its user with it, and lets go of the Secrets it used before.
func (u inUse) hold(ctx context.Context, cr *v1alpha1.ApiKey) error {
	held := ""
	if name := secretName(cr); name != "" && u.deletesUser(cr) {
		held = name
	}
	// Recorded first: a Secret that gets the finalizer is always one some
	// ApiKey records, so it is released when no longer needed, whatever
	// restart comes in between.
	at := &cr.Status.AtProvider
	if at.ConnectionSecretInUse != held {
		if err := u.record(ctx, cr, held); err != nil {
			return err
		}
	}
	if held != "" {
		if err := u.protect(ctx, cr.GetNamespace(), held); err != nil {
			return err
		}
	}
	return u.releaseAll(ctx, cr, at.ConnectionSecretsToRelease)
}

// free lets go of every Secret an ApiKey that is going used: its user is
// deleted, or left alone.
func (u inUse) free(ctx context.Context, cr *v1alpha1.ApiKey) error {
	if cr.Status.AtProvider.ConnectionSecretInUse != "" {
		if err := u.record(ctx, cr, ""); err != nil {
			return err
		}
	}
	return u.releaseAll(ctx, cr, append([]string{secretName(cr)}, cr.Status.AtProvider.ConnectionSecretsToRelease...))
}

// record durably sets the Secret an ApiKey uses, adding the one it used
// before to those it releases.
func (u inUse) record(ctx context.Context, cr *v1alpha1.ApiKey, name string) error {
	at := &cr.Status.AtProvider
	if was := at.ConnectionSecretInUse; was != "" && !slices.Contains(at.ConnectionSecretsToRelease, was) {
		at.ConnectionSecretsToRelease = append(at.ConnectionSecretsToRelease, was)
	}
	at.ConnectionSecretInUse = name
	return errors.Wrap(u.kube.Status().Update(ctx, cr), "cannot record the connection Secret in use")
}

// releaseAll releases Secrets, except the one the ApiKey uses, and then
// forgets those it had to release (the ApiKey's next status write records
// that; until then releasing again is harmless).
func (u inUse) releaseAll(ctx context.Context, cr *v1alpha1.ApiKey, names []string) error {
	at := &cr.Status.AtProvider
	for _, name := range names {
		if name == "" || name == at.ConnectionSecretInUse {
			continue
		}
		if err := u.release(ctx, cr.GetNamespace(), name); err != nil {
			return err
		}
	}
	at.ConnectionSecretsToRelease = nil
	return nil
}

// protect adds InUseFinalizer to a Secret. A Secret being deleted admits no
// new user (and the API server refuses new finalizers on it): that is an
// error unless the Secret is protected already.
func (u inUse) protect(ctx context.Context, ns, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := &corev1.Secret{}
		if err := u.live.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		if controllerutil.ContainsFinalizer(s, InUseFinalizer) {
			return nil
		}
		if meta.WasDeleted(s) {
			return errors.New("it is being deleted")
		}
		return u.patchFinalizers(ctx, s, controllerutil.AddFinalizer)
	})
	return errors.Wrapf(err, "cannot protect Secret %q from deletion while in use", name)
}

// release removes InUseFinalizer from a Secret no ApiKey uses any more.
func (u inUse) release(ctx context.Context, ns, name string) error {
	users, err := u.users(ctx, ns, name)
	if err != nil || len(users) > 0 {
		return err
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := &corev1.Secret{}
		if err := u.live.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
			return client.IgnoreNotFound(err)
		}
		if !controllerutil.ContainsFinalizer(s, InUseFinalizer) {
			return nil
		}
		return client.IgnoreNotFound(u.patchFinalizers(ctx, s, controllerutil.RemoveFinalizer))
	})
	return errors.Wrapf(err, "cannot release Secret %q", name)
}

// users returns the ApiKeys that use a Secret: they record it, and would
// delete their user with it. ApiKeys are read as unstructured objects, so
// that one the provider cannot decode still counts.
func (u inUse) users(ctx context.Context, ns, name string) ([]string, error) {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind.GroupVersion().WithKind(v1alpha1.ApiKeyKind + "List"))
	if err := u.live.List(ctx, l, client.InNamespace(ns)); err != nil {
		return nil, errors.Wrap(err, "cannot list ApiKeys")
	}
	var users []string
	for _, o := range l.Items {
		rec, _, _ := unstructured.NestedString(o.Object, "status", "atProvider", "connectionSecretInUse")
		if rec != name {
			continue
		}
		pols, found, _ := unstructured.NestedStringSlice(o.Object, "spec", "managementPolicies")
		if !found {
			pols = []string{string(xpv2.ManagementActionAll)}
		}
		p := managed.NewManagementPoliciesResolver(u.policies, toPolicies(pols))
		if o.GetDeletionTimestamp() == nil || p.ShouldDelete() || p.IsPaused() {
			users = append(users, o.GetName())
		}
	}
	return users, nil
}

// deletesUser reports whether an ApiKey will delete its user when it is
// deleted: its management policies allow Delete.
func (u inUse) deletesUser(cr *v1alpha1.ApiKey) bool {
	return managed.NewManagementPoliciesResolver(u.policies, cr.GetManagementPolicies()).ShouldDelete()
}

// patchFinalizers changes a Secret's finalizers with a patch that fails on a
// conflict, so a finalizer another writer added meanwhile is never lost, and
// that does not carry the Secret's data.
func (u inUse) patchFinalizers(ctx context.Context, s *corev1.Secret, change func(client.Object, string) bool) error {
	from := client.MergeFromWithOptions(s.DeepCopy(), client.MergeFromWithOptimisticLock{})
	change(s, InUseFinalizer)
	return u.kube.Patch(ctx, s, from)
}

// secretName is the connectionSecretRef Secret an ApiKey names, or "".
func secretName(cr *v1alpha1.ApiKey) string {
	if r := cr.Spec.ForProvider.ConnectionSecretRef; r != nil {
		return r.Name
	}
	return ""
}

func toPolicies(s []string) xpv2.ManagementPolicies {
	p := make(xpv2.ManagementPolicies, len(s))
	for i := range s {
		p[i] = xpv2.ManagementAction(s[i])
	}
	return p
}

// finalizer is the managed resource finalizer of ApiKeys: before it is
// removed, the ApiKey lets go of the Secrets it used. The managed reconciler
// removes it once the user is deleted, or at once when the user is left
// alone.
type finalizer struct {
	resource.Finalizer
	inUse inUse
}

func (f finalizer) RemoveFinalizer(ctx context.Context, obj resource.Object) error {
	if cr, ok := obj.(*v1alpha1.ApiKey); ok {
		if err := f.inUse.free(ctx, cr); err != nil {
			return err
		}
	}
	return f.Finalizer.RemoveFinalizer(ctx, obj)
}
