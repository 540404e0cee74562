package apikey

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// recentTTL is how long recentSecrets answers from what it read.
const recentTTL = time.Second

// recentSecrets reads the Secrets that say how to administer a Redis (an
// instance's auth Secret, a connectionSecretRef) from the API server, and
// answers the same read again within recentTTL from what it read: the
// ApiKeys of one instance reconcile together (a burst of new keys, a
// provider that starts, a Redis pod that turns ready), and a read each would
// be a thousand reads of one Secret. A password changed is seen within
// recentTTL. Nothing is kept longer: tenants' Secrets do not stay in the
// provider's memory. Never used for connection Secrets: a key published a
// moment ago must be read as it is now.
type recentSecrets struct {
	live client.Reader
	now  func() time.Time

	mu sync.Mutex
	m  map[types.NamespacedName]recentSecret
}

type recentSecret struct {
	s  *corev1.Secret
	at time.Time
}

func (r *recentSecrets) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s, ok := obj.(*corev1.Secret)
	if !ok || len(opts) > 0 {
		return r.live.Get(ctx, key, obj, opts...)
	}
	now := r.now()
	r.mu.Lock()
	e, hit := r.m[key]
	r.mu.Unlock()
	if hit && now.Sub(e.at) < recentTTL {
		e.s.DeepCopyInto(s)
		return nil
	}
	if err := r.live.Get(ctx, key, s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[types.NamespacedName]recentSecret{}
	}
	for k, e := range r.m {
		if now.Sub(e.at) >= recentTTL {
			delete(r.m, k)
		}
	}
	r.m[key] = recentSecret{s: s.DeepCopy(), at: now}
	return nil
}

func (r *recentSecrets) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.live.List(ctx, list, opts...)
}
