package apikey

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
)

// quietManager is the manager the managed reconciler is built with: its
// client does not send a status update that would change nothing.
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
		cur := &v1alpha1.ApiKey{}
		if err := s.cache.Get(ctx, client.ObjectKeyFromObject(cr), cur); err == nil &&
			cur.GetResourceVersion() == cr.GetResourceVersion() && equality.Semantic.DeepEqual(cur.Status, cr.Status) {
			return nil
		}
	}
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}
