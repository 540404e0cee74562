package apikey

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/event"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// reasonUndecodable is the event reason on an ApiKey the provider cannot
// decode.
const reasonUndecodable event.Reason = "CannotDecodeApiKey"

// errUndecodable starts the message of an ApiKey the provider cannot decode.
const errUndecodable = "cannot decode this ApiKey; it is not reconciled until fixed"

// An undecodable reports ApiKeys the provider cannot decode. They are left
// out of its cache (see ApiKeyList.UnmarshalJSON) rather than stop the
// cache syncing for every tenant, so they are never reconciled: their
// owner learns why from a Synced=False condition, written here on the
// object as the API server has it, and an event.
type undecodable struct {
	live client.Reader
	kube client.Client
	log  logging.Logger
	rec  event.Recorder
	// todo holds the ApiKeys to mark; report never blocks the decoding
	// that found them.
	todo chan undecoded
}

type undecoded struct {
	meta metav1.ObjectMeta
	err  error
}

func newUndecodable(live client.Reader, kube client.Client, log logging.Logger, rec event.Recorder) *undecodable {
	return &undecodable{live: live, kube: kube, log: log, rec: rec, todo: make(chan undecoded, 1024)}
}

// report is called while a list of ApiKeys is decoded.
func (u *undecodable) report(m metav1.ObjectMeta, err error) {
	u.log.Info("Cannot decode an ApiKey: it is not reconciled until its owner fixes it", "namespace", m.GetNamespace(), "name", m.GetName(), "error", err)
	ak := &v1alpha1.ApiKey{ObjectMeta: m}
	ak.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind)
	u.rec.Event(ak, event.Warning(reasonUndecodable, errors.Wrap(err, errUndecodable)))
	select {
	case u.todo <- undecoded{meta: m, err: err}:
	default:
		// Full: the next list decoded reports it again.
	}
}

// Start marks the reported ApiKeys until ctx is done.
func (u *undecodable) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-u.todo:
			if err := u.mark(ctx, d); err != nil {
				u.log.Info("Cannot mark an undecodable ApiKey", "namespace", d.meta.GetNamespace(), "name", d.meta.GetName(), "error", err)
			}
		}
	}
}

// mark sets Synced=False saying why on the ApiKey, unless it already says
// so: an update would make the API server send the object again, and it
// would be reported again.
func (u *undecodable) mark(ctx context.Context, d undecoded) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind)
	if err := u.live.Get(ctx, types.NamespacedName{Namespace: d.meta.GetNamespace(), Name: d.meta.GetName()}, obj); err != nil {
		return errors.Wrap(client.IgnoreNotFound(err), "cannot get the ApiKey")
	}
	var cs xpv2.ConditionedStatus
	if raw, ok, _ := unstructured.NestedSlice(obj.Object, "status", "conditions"); ok {
		// Conditions that do not decode are replaced.
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]any{"conditions": raw}, &cs)
	}
	want := xpv2.ReconcileError(errors.Wrap(d.err, errUndecodable)).WithObservedGeneration(obj.GetGeneration())
	if cs.GetCondition(xpv2.TypeSynced).Equal(want) {
		return nil
	}
	cs.SetConditions(want)
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&cs)
	if err != nil {
		return errors.Wrap(err, "cannot convert the conditions")
	}
	if err := unstructured.SetNestedField(obj.Object, m["conditions"], "status", "conditions"); err != nil {
		return errors.Wrap(err, "cannot set the conditions")
	}
	return errors.Wrap(u.kube.Status().Update(ctx, obj), "cannot update the ApiKey's status")
}
