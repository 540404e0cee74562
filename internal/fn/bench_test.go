package fn

import (
	"context"
	"net"
	"slices"
	"syscall"
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

// benchChanged is benchRequest with another spec: alternating the two, every
// call composes (the response cache holds one request per composite).
func benchChanged() *fnv1.RunFunctionRequest {
	req := benchRequest()
	req.Observed.Composite = claimXR(`{"memory": "256Mi", "config": {"timeout": "301"}}`)
	return req
}

// BenchmarkRunFunction measures one composition in-process: Repeated is a
// steady-state reconcile (the same request again, answered from the response
// cache), Changed composes every time.
func BenchmarkRunFunction(b *testing.B) {
	ctx := context.Background()
	for name, reqs := range map[string][]*fnv1.RunFunctionRequest{
		"Repeated": {benchRequest()},
		"Changed":  {benchRequest(), benchChanged()},
	} {
		b.Run(name, func(b *testing.B) {
			f := NewFunction(logging.NewNopLogger())
			b.ReportAllocs()
			defer reportCPU(b)()
			i := 0
			for b.Loop() {
				rsp, err := f.RunFunction(ctx, reqs[i%len(reqs)])
				if err != nil || len(rsp.GetDesired().GetResources()) != 5 {
					b.Fatalf("RunFunction(...): %v, %d resources", err, len(rsp.GetDesired().GetResources()))
				}
				i++
			}
		})
	}
}

// emptyRunner answers every request with an empty response: the floor of a
// gRPC call, the anchor the function's figures are measured against.
type emptyRunner struct {
	fnv1.UnimplementedFunctionRunnerServiceServer
}

func (emptyRunner) RunFunction(context.Context, *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	return &fnv1.RunFunctionResponse{}, nil
}

// BenchmarkRunFunctionGRPC measures a full composition through a real gRPC
// server and client on loopback, as Crossplane calls it (without TLS), and
// reports latency percentiles next to ns/op and, as cpu-x-floor, its CPU time
// over the Floor's (an empty unary call, measured first in the same run).
func BenchmarkRunFunctionGRPC(b *testing.B) {
	var floor float64
	for _, bc := range []struct {
		name string
		srv  fnv1.FunctionRunnerServiceServer
		reqs []*fnv1.RunFunctionRequest
	}{
		{"Floor", emptyRunner{}, []*fnv1.RunFunctionRequest{benchRequest()}},
		{"Repeated", NewFunction(logging.NewNopLogger()), []*fnv1.RunFunctionRequest{benchRequest()}},
		{"Changed", NewFunction(logging.NewNopLogger()), []*fnv1.RunFunctionRequest{benchRequest(), benchChanged()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ns := benchGRPC(b, bc.srv, bc.reqs)
			if bc.name == "Floor" {
				floor = ns
			} else if floor > 0 {
				b.ReportMetric(ns/floor, "cpu-x-floor")
			}
		})
	}
}

// benchGRPC serves srv on loopback and calls it with reqs in turn, returning
// the CPU time per call in ns.
func benchGRPC(b *testing.B, s fnv1.FunctionRunnerServiceServer, reqs []*fnv1.RunFunctionRequest) float64 {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	fnv1.RegisterFunctionRunnerServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := fnv1.NewFunctionRunnerServiceClient(conn)
	ctx := context.Background()
	if _, err := c.RunFunction(ctx, reqs[0]); err != nil { // Connect outside the timing.
		b.Fatal(err)
	}

	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := reportCPU(b)
	i := 0
	for b.Loop() {
		start := time.Now()
		if _, err := c.RunFunction(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	b.StopTimer()
	ns := cpu()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	return ns
}

// reportCPU starts counting the CPU time the process spends (all threads:
// the function, gRPC's server and client, the collector); the function it
// returns reports it per operation as cpu-ns/op and returns that. On a
// machine shared with other work, CPU time is steadier than ns/op.
func reportCPU(b *testing.B) func() float64 {
	b.Helper()
	start := cpuTime(b)
	return func() float64 {
		ns := float64((cpuTime(b) - start).Nanoseconds()) / float64(b.N)
		b.ReportMetric(ns, "cpu-ns/op")
		return ns
	}
}

func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
