package apikey

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
)

// cluster is what the fake API server holds: an instance with the given
// status (none when nil), Secrets by name, and the Service's EndpointSlices.
func cluster(status map[string]any, secrets map[string]map[string]string, slices ...discoveryv1.EndpointSlice) *test.MockClient {
	return &test.MockClient{
		MockGet: func(_ context.Context, key client.ObjectKey, obj client.Object) error {
			switch o := obj.(type) {
			case *unstructured.Unstructured:
				if status == nil {
					return kerrors.NewNotFound(schema.GroupResource{Group: "redishttp.io", Resource: "redishttpinstances"}, key.Name)
				}
				o.SetNamespace(key.Namespace)
				o.SetName(key.Name)
				o.Object["status"] = status
				return nil
			case *corev1.Secret:
				data, ok := secrets[key.Name]
				if !ok {
					return kerrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
				}
				o.Data = map[string][]byte{}
				for k, v := range data {
					o.Data[k] = []byte(v)
				}
				return nil
			}
			return nil
		},
		MockList: func(_ context.Context, l client.ObjectList, _ ...client.ListOption) error {
			l.(*discoveryv1.EndpointSliceList).Items = slices
			return nil
		},
	}
}

// redisPodsOf is a pod cache holding the given Redis pods of instance cache.
func redisPodsOf(pods ...corev1.Pod) client.Reader {
	for i := range pods {
		pods[i].SetName(fmt.Sprintf("cache-redis-%d", i))
	}
	return &test.MockClient{MockList: func(_ context.Context, l client.ObjectList, _ ...client.ListOption) error {
		l.(*corev1.PodList).Items = pods
		return nil
	}}
}

func TestAdminFor(t *testing.T) {
	// What the function composes for instance "cache": its auth Secret, and
	// its status. No tenant connection Secret: in claim mode there is none
	// unless the tenant asked for one.
	auth := map[string]map[string]string{"cache-redis-auth": {"password": "admin", "auth.conf": "requirepass admin"}}
	status := map[string]any{"endpoint": endpoint, "port": int64(6379), "phase": "Ready"}
	ready, notReady := true, false
	port := int32(6380)
	type args struct {
		kube client.Client
		pods client.Reader
		p    v1alpha1.ApiKeyParameters
		cfg  v1alpha1.ProviderConfigSpec
	}
	type want struct {
		a        admin
		notFound bool
		err      error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"InstanceInClusterDNS": {
			reason: "By default the provider should dial the endpoint of the instance's status, as user default with the password of the instance's auth Secret.",
			args:   args{kube: cluster(status, auth), p: v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}},
			want: want{a: admin{
				creds:    redis.Credentials{Address: endpoint + ":6379", Username: "default", Password: "admin"},
				endpoint: endpoint, port: "6379",
			}},
		},
		"InstanceAddressOverride": {
			reason: "An address override should change what the provider dials, never what apps are told.",
			args: args{
				kube: cluster(status, auth),
				p:    v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
				cfg:  v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{AddressOverride: "127.0.0.1:7000"}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "127.0.0.1:7000", Username: "default", Password: "admin"},
				endpoint: endpoint, port: "6379",
			}},
		},
		"InstanceEndpointSlice": {
			reason: "EndpointSlice resolution should dial the first ready pod address of the Service, on the slice's port.",
			args: args{
				kube: cluster(status, auth, discoveryv1.EndpointSlice{
					Ports: []discoveryv1.EndpointPort{{Port: &port}},
					Endpoints: []discoveryv1.Endpoint{
						{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
						{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
					},
				}),
				p:   v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
				cfg: v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{Resolve: v1alpha1.ResolveEndpointSlice}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "10.0.0.2:6380", Username: "default", Password: "admin"},
				endpoint: endpoint, port: "6379",
			}},
		},
		"InstanceEndpointSliceReadyPod": {
			reason: "EndpointSlice resolution should dial the instance's ready pod as soon as the pod is ready, before its EndpointSlice says so: the pod watch heals ApiKeys at that moment.",
			args: args{
				kube: cluster(status, auth),
				pods: redisPodsOf(corev1.Pod{
					Spec:   corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6380}}}}},
					Status: corev1.PodStatus{PodIP: "10.0.0.9", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
				}),
				p:   v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
				cfg: v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{Resolve: v1alpha1.ResolveEndpointSlice}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "10.0.0.9:6380", Username: "default", Password: "admin"},
				endpoint: endpoint, port: "6379",
			}},
		},
		"InstanceEndpointSliceUnreadyPod": {
			reason: "EndpointSlice resolution should not dial a pod that is not ready, and fall back to the EndpointSlices.",
			args: args{
				kube: cluster(status, auth, discoveryv1.EndpointSlice{
					Ports:     []discoveryv1.EndpointPort{{Port: &port}},
					Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
				}),
				pods: redisPodsOf(corev1.Pod{Status: corev1.PodStatus{PodIP: "10.0.0.9"}}),
				p:    v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
				cfg:  v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{Resolve: v1alpha1.ResolveEndpointSlice}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "10.0.0.2:6380", Username: "default", Password: "admin"},
				endpoint: endpoint, port: "6379",
			}},
		},
		"NoReadyEndpoint": {
			reason: "EndpointSlice resolution with no ready pod should be an error, retried.",
			args: args{
				kube: cluster(status, auth),
				p:    v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
				cfg:  v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{Resolve: v1alpha1.ResolveEndpointSlice}},
			},
			want: want{err: errors.New(`cannot resolve the address of RedisHttpInstance "cache": cannot find a ready endpoint of Service "cache-redis"`)},
		},
		"InstanceWithoutStatus": {
			reason: "An instance the function has not yet given a status should be reached at its Service's in-cluster name on port 6379.",
			args:   args{kube: cluster(map[string]any{}, auth), p: v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "cache-redis.team-a.svc.cluster.local:6379", Username: "default", Password: "admin"},
				endpoint: "cache-redis.team-a.svc.cluster.local", port: "6379",
			}},
		},
		"InstanceStatusPort": {
			reason: "The port of the instance's status should be dialled and published.",
			args: args{
				kube: cluster(map[string]any{"endpoint": "cache.example", "port": int64(6380)}, auth),
				p:    v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "cache.example:6380", Username: "default", Password: "admin"},
				endpoint: "cache.example", port: "6380",
			}},
		},
		"InstanceWithGateway": {
			reason: "The gateway URLs of the instance's status should be published with the key.",
			args: args{
				kube: cluster(map[string]any{"endpoint": endpoint, "port": int64(6379), "http": map[string]any{"url": "https://cache.example.com", "inClusterURL": "http://cache-http.team-a.svc.cluster.local:8080"}}, auth),
				p:    v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: endpoint + ":6379", Username: "default", Password: "admin"},
				endpoint: endpoint, port: "6379",
				restURL: "https://cache.example.com", restURLInCluster: "http://cache-http.team-a.svc.cluster.local:8080",
			}},
		},
		"BringYourOwnGateway": {
			reason: "A connectionSecretRef Secret's gateway URLs should be published with the key.",
			args: args{
				kube: cluster(nil, map[string]map[string]string{"my-redis": {"endpoint": "redis.example.org", "password": "pw", contract.KeyRESTURL: "https://gw.example.org"}}),
				p:    v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "redis.example.org:6379", Username: "default", Password: "pw", Restricted: true},
				endpoint: "redis.example.org", port: "6379", restURL: "https://gw.example.org",
			}},
		},
		"AuthSecretWithoutPassword": {
			reason: "An auth Secret without a password should be refused with an error.",
			args: args{
				kube: cluster(status, map[string]map[string]string{"cache-redis-auth": {"auth.conf": "requirepass admin"}}),
				p:    v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
			},
			want: want{err: errors.New(`cannot use the auth Secret of RedisHttpInstance "cache": cannot use Secret "cache-redis-auth": it has no password`)},
		},
		"MissingInstance": {
			reason: "A missing instance should be a not-found error, which lets a deleted ApiKey go.",
			args:   args{kube: cluster(nil, auth), p: v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}},
			want:   want{notFound: true, err: errors.New(`cannot get RedisHttpInstance "cache": redishttpinstances.redishttp.io "cache" not found`)},
		},
		"MissingAuthSecret": {
			reason: "A missing auth Secret should be a not-found error too, which lets a deleted ApiKey go.",
			args:   args{kube: cluster(status, nil), p: v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}},
			want:   want{notFound: true, err: errors.New(`cannot use the auth Secret of RedisHttpInstance "cache": cannot get Secret "cache-redis-auth": secrets "cache-redis-auth" not found`)},
		},
		"BringYourOwnRedis": {
			reason: "A connectionSecretRef should be dialled as it says, with its username, and port 6379 when it has none.",
			args: args{
				kube: cluster(nil, map[string]map[string]string{"my-redis": {"endpoint": "redis.example.org", "username": "admin", "password": "pw"}}),
				p:    v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}},
			},
			want: want{a: admin{
				creds:    redis.Credentials{Address: "redis.example.org:6379", Username: "admin", Password: "pw", Restricted: true},
				endpoint: "redis.example.org", port: "6379",
			}},
		},
		"SecretWithoutEndpoint": {
			reason: "A Secret without an endpoint should be refused with an error.",
			args: args{
				kube: cluster(nil, map[string]map[string]string{"my-redis": {"password": "pw"}}),
				p:    v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}},
			},
			want: want{err: errors.New(`cannot use Secret "my-redis": it has no endpoint`)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cr := apiKeyFor(func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider = tc.args.p })
			got, err := adminFor(context.Background(), tc.args.kube, tc.args.kube, tc.args.pods, cr, tc.args.cfg)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\nadminFor(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.notFound, gone(err)); diff != "" {
				t.Errorf("%s\ngone(adminFor(...)): -want, +got:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.a, got, cmp.AllowUnexported(admin{})); diff != "" {
				t.Errorf("%s\nadminFor(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
