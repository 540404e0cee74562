package apikey

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
)

func TestQuietUpdate(t *testing.T) {
	version := func(rv string, o ...func(*v1alpha1.ApiKey)) *v1alpha1.ApiKey {
		ak := &v1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", ResourceVersion: rv}}
		meta.SetExternalName(ak, user)
		for _, fn := range o {
			fn(ak)
		}
		return ak
	}
	pending := func(ak *v1alpha1.ApiKey) { meta.SetExternalCreatePending(ak, time.Now()) }
	labelled := func(ak *v1alpha1.ApiKey) { ak.SetLabels(map[string]string{"app": "web"}) }
	cases := map[string]struct {
		reason string
		// wrote is the ApiKey as the reconcile last wrote it; cached as the
		// cache has it.
		wrote  *v1alpha1.ApiKey
		cached *v1alpha1.ApiKey
		update *v1alpha1.ApiKey
		want   bool
	}{
		"CreationAnnotationAfterOwnWrite": {
			reason: "A creation annotation on the version the reconcile itself just wrote is not sent, though the cache does not hold that version yet.",
			wrote:  version("2"),
			cached: version("1"),
			update: version("2", pending),
			want:   false,
		},
		"CreationAnnotationOnCachedVersion": {
			reason: "A creation annotation on the version the cache holds is not sent.",
			cached: version("2"),
			update: version("2", pending),
			want:   false,
		},
		"OtherChangeAfterOwnWrite": {
			reason: "Any other change is sent.",
			wrote:  version("2"),
			cached: version("1"),
			update: version("2", pending, labelled),
			want:   true,
		},
		"UnknownVersion": {
			reason: "A version neither the reconcile wrote nor the cache holds is sent: what else changed is unknown.",
			cached: version("1"),
			update: version("2", pending),
			want:   true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sent := false
			c := quietClient{Client: &test.MockClient{
				MockGet: func(_ context.Context, _ client.ObjectKey, obj client.Object) error {
					tc.cached.DeepCopyInto(obj.(*v1alpha1.ApiKey))
					return nil
				},
				MockUpdate: func(context.Context, client.Object, ...client.UpdateOption) error {
					sent = true
					return nil
				},
			}}
			ctx := withSeen(context.Background())
			if tc.wrote != nil {
				seenIn(ctx).wroteKey(tc.wrote)
			}
			if err := c.Update(ctx, tc.update); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, sent); diff != "" {
				t.Errorf("\n%s\nUpdate sent: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
