package local

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDNS(t *testing.T) {
	names := map[string][]netip.Addr{
		"cache-redis.team-a.svc.cluster.local":                        {netip.MustParseAddr("10.96.0.12")},
		"cache-redis-0.cache-redis-headless.team-a.svc.cluster.local": {netip.MustParseAddr("198.18.0.5")},
		"cache-redis-headless.team-a.svc.cluster.local":               {netip.MustParseAddr("198.18.0.5"), netip.MustParseAddr("198.18.0.6")},
		"empty-headless.team-a.svc.cluster.local":                     {},
	}
	s, err := startDNS(func(n string) ([]netip.Addr, bool) { a, ok := names[n]; return a, ok })
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	type want struct {
		addrs    []string
		notFound bool
	}
	cases := map[string]struct {
		reason  string
		network string
		name    string
		want    want
	}{
		"ClusterIP": {
			reason: "A Service's name should resolve to its ClusterIP.",
			name:   "cache-redis.team-a.svc.cluster.local", want: want{addrs: []string{"10.96.0.12"}},
		},
		"PodName": {
			reason: "A StatefulSet pod's name under its headless Service should resolve to the pod's IP.",
			name:   "cache-redis-0.cache-redis-headless.team-a.svc.cluster.local", want: want{addrs: []string{"198.18.0.5"}},
		},
		"HeadlessOverTCP": {
			reason: "A headless Service should resolve to every ready endpoint, over TCP too.", network: "tcp",
			name: "cache-redis-headless.team-a.svc.cluster.local", want: want{addrs: []string{"198.18.0.5", "198.18.0.6"}},
		},
		"UnknownClusterName": {
			reason: "A cluster name no Service or pod has should not exist.",
			name:   "cache-redis-9.cache-redis-headless.team-a.svc.cluster.local", want: want{notFound: true},
		},
		"NoReadyEndpoint": {
			reason: "A headless Service without ready endpoints exists but has no address.",
			name:   "empty-headless.team-a.svc.cluster.local", want: want{notFound: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				if tc.network != "" {
					network = tc.network
				}
				var d net.Dialer
				return d.DialContext(ctx, network, s.addr)
			}}
			addrs, err := r.LookupHost(context.Background(), tc.name)
			var dnsErr *net.DNSError
			got := want{addrs: addrs, notFound: errors.As(err, &dnsErr) && dnsErr.IsNotFound}
			if err != nil && !got.notFound {
				t.Fatalf("LookupHost(%q): %v", tc.name, err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{}), cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("%s\nLookupHost(%q): -want, +got:\n%s", tc.reason, tc.name, diff)
			}
		})
	}
}
