package apikey

import (
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
)

func TestDetails(t *testing.T) {
	base := func(k string) managed.ConnectionDetails {
		return managed.ConnectionDetails{
			contract.KeyUsername: []byte("u"),
			contract.KeyPassword: []byte(k),
			contract.KeyEndpoint: []byte("cache-redis"),
			contract.KeyPort:     []byte("6379"),
			contract.KeyURL:      []byte("redis://u:" + k + "@cache-redis:6379/0"),
		}
	}
	with := func(d managed.ConnectionDetails, kv map[string][]byte) managed.ConnectionDetails {
		maps.Copy(d, kv)
		return d
	}
	type args struct {
		key  string
		a    admin
		held []string
	}
	cases := map[string]struct {
		reason string
		args   args
		want   managed.ConnectionDetails
	}{
		"NoGateway": {
			reason: "Without an HTTP gateway the Secret holds the Redis URL and its parts only.",
			args:   args{key: "k1", a: admin{endpoint: "cache-redis", port: "6379"}},
			want:   base("k1"),
		},
		"Gateway": {
			reason: "With a gateway the Secret also holds its URLs and the key's REST token, the user's and key's.",
			args:   args{key: "k1", a: admin{endpoint: "cache-redis", port: "6379", restURL: "https://cache.example.com", restURLInCluster: "http://cache-http.team-a.svc.cluster.local:8080"}},
			want: with(base("k1"), map[string][]byte{
				contract.KeyRESTURL:          []byte("https://cache.example.com"),
				contract.KeyRESTToken:        []byte(contract.Token("u", "k1")),
				contract.KeyRESTURLInCluster: []byte("http://cache-http.team-a.svc.cluster.local:8080"),
			}),
		},
		"RotatedKeyNewToken": {
			reason: "A new key is a new REST token.",
			args:   args{key: "k2", a: admin{endpoint: "cache-redis", port: "6379", restURL: "http://gw:8080"}},
			want: with(base("k2"), map[string][]byte{
				contract.KeyRESTURL:   []byte("http://gw:8080"),
				contract.KeyRESTToken: []byte(contract.Token("u", "k2")),
			}),
		},
		"GatewayGone": {
			reason: "When HTTP is switched off, the REST keys the Secret holds are removed (nil: deleted by the merge patch).",
			args:   args{key: "k1", a: admin{endpoint: "cache-redis", port: "6379"}, held: []string{contract.KeyRESTURL, contract.KeyRESTToken}},
			want: with(base("k1"), map[string][]byte{
				contract.KeyRESTURL:   nil,
				contract.KeyRESTToken: nil,
			}),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := details("u", tc.args.key, tc.args.a, tc.args.held)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\ndetails(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
