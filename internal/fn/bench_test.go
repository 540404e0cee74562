package fn

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// benchRequest is a steady-state reconcile of a claim: the auth Secret and a
// ready StatefulSet are observed, so the password is reused, not generated.
func benchRequest() *fnv1.RunFunctionRequest {
	observed := observedAuth(testPassword)
	observed["statefulset"] = observedSTS(1, 1, 1)["statefulset"]
	return &fnv1.RunFunctionRequest{Observed: &fnv1.State{
		Composite: claimXR(`{"memory": "256Mi", "config": {"timeout": "300"}}`),
		Resources: observed,
	}}
}

// BenchmarkRunFunction measures one full composition in-process.
func BenchmarkRunFunction(b *testing.B) {
	f := NewFunction(logging.NewNopLogger())
	req := benchRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rsp, err := f.RunFunction(ctx, req)
		if err != nil || len(rsp.GetDesired().GetResources()) != 5 {
			b.Fatalf("RunFunction(...): %v, %d resources", err, len(rsp.GetDesired().GetResources()))
		}
	}
}

// BenchmarkRunFunctionGRPC measures a full composition through a real gRPC
// server and client on loopback, as Crossplane calls it (without TLS), and
// reports latency percentiles next to ns/op.
func BenchmarkRunFunctionGRPC(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	fnv1.RegisterFunctionRunnerServiceServer(srv, NewFunction(logging.NewNopLogger()))
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := fnv1.NewFunctionRunnerServiceClient(conn)
	req := benchRequest()
	ctx := context.Background()
	if _, err := c.RunFunction(ctx, req); err != nil { // Connect outside the timing.
		b.Fatal(err)
	}

	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.RunFunction(ctx, req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
