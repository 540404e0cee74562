package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crossplane/function-sdk-go"
)

func TestServeOptionsMetricsAddress(t *testing.T) {
	cases := map[string]struct {
		reason  string
		address string
		want    string
	}{
		"Empty": {
			reason:  "An empty --metrics-address should disable metrics, not fall back to function-sdk-go's :8080.",
			address: "",
			want:    "",
		},
		"Set": {
			reason:  "A --metrics-address should be where metrics are served.",
			address: "127.0.0.1:9090",
			want:    "127.0.0.1:9090",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := &CLI{Network: "tcp", Address: ":9443", Insecure: true, MaxRecvMessageSize: 4, MetricsAddress: tc.address}
			o := &function.ServeOptions{MetricsAddress: function.DefaultMetricsAddress}
			for _, opt := range c.serveOptions() {
				if err := opt(o); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.want, o.MetricsAddress); diff != "" {
				t.Errorf("%s\nserveOptions(): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
