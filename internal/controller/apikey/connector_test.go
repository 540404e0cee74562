package apikey

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"

	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
)

type trackerFn func(ctx context.Context, mg resource.ModernManaged) error

func (fn trackerFn) Track(ctx context.Context, mg resource.ModernManaged) error { return fn(ctx, mg) }

// TestConnectWhileDeleting covers how an ApiKey being deleted connects when
// what it needs is going away with its namespace.
func TestConnectWhileDeleting(t *testing.T) {
	remembered := admin{creds: redis.Credentials{Address: "cache-redis:6379", Username: "default", Password: "admin"}, endpoint: "cache-redis", port: "6379"}
	type args struct {
		cr       *v1alpha1.ApiKey
		remember bool
	}
	type want struct {
		tracked bool
		client  string // "external", "best effort" or "no redis"
		err     bool
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"Live": {
			reason: "An ApiKey that is not being deleted records its provider config usage.",
			args:   args{cr: apiKeyFor()},
			want:   want{tracked: true, err: true},
		},
		"DeletingDoesNotTrack": {
			reason: "An ApiKey being deleted must not create a usage: in a namespace being deleted that fails, and the ApiKey (and its namespace) would never go.",
			args:   args{cr: apiKeyFor(withDeletion())},
			want:   want{client: "no redis"},
		},
		"DeletingWithRememberedAdmin": {
			reason: "An ApiKey being deleted whose instance is gone deletes its user, as well as it can, with the admin it used last.",
			args:   args{cr: apiKeyFor(withDeletion()), remember: true},
			want:   want{client: "best effort"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tracked := false
			// Nothing exists: no ClusterProviderConfig (the defaults
			// apply), no instance.
			kube := &test.MockClient{MockGet: func(_ context.Context, key client.ObjectKey, _ client.Object) error {
				return kerrors.NewNotFound(schema.GroupResource{}, key.Name)
			}}
			c := &connector{
				kube: kube, live: kube, admin: kube,
				usage: trackerFn(func(context.Context, resource.ModernManaged) error { tracked = true; return nil }),
				acl:   func(redis.Credentials) redis.ACL { return &fakeACL{} },
			}
			if tc.args.remember {
				c.admins.remember(tc.args.cr.GetUID(), remembered)
			}
			got, err := c.Connect(context.Background(), tc.args.cr)
			client := ""
			switch e := got.(type) {
			case noRedis:
				client = "no redis"
			case *external:
				client = "external"
				if e.bestEffort {
					client = "best effort"
				}
			}
			if diff := cmp.Diff(tc.want, want{tracked: tracked, client: client, err: err != nil}, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nConnect(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
