//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
)

// TestBenchClaims measures how fast the local control plane turns claims
// Ready: E2E_BENCH_CLAIMS claims (default 100) applied at once in claim mode,
// pods simulated by kwok only (no redis-server per claim). It reports claims
// per minute and the function's CPU time and peak memory. `make bench-e2e`
// runs it; it is skipped otherwise.
func TestBenchClaims(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("E2E_BENCH_CLAIMS"))
	if n == 0 {
		t.Skip("set E2E_BENCH_CLAIMS (make bench-e2e)")
	}
	c := startBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	ns := "bench"
	if err := c.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	cpu0 := procCPU(c.FunctionPid())
	t0 := time.Now()
	tmpl := instance(t, ns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := tmpl.DeepCopy()
			o.SetName(fmt.Sprintf("c%04d", i))
			o.Object["spec"].(map[string]any)["writeConnectionSecretToRef"] = map[string]any{"name": o.GetName() + "-redis"}
			if err := c.Apply(ctx, o); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	applied := time.Since(t0)
	var firstReady time.Duration
	for {
		l := &unstructured.UnstructuredList{}
		l.SetAPIVersion(local.InstanceAPIVersion)
		l.SetKind("RedisHttpInstanceList")
		if err := c.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		ready := 0
		for i := range l.Items {
			conds, _, _ := unstructured.NestedSlice(l.Items[i].Object, "status", "conditions")
			for _, cd := range conds {
				if m, _ := cd.(map[string]any); m["type"] == "Ready" && m["status"] == "True" {
					ready++
				}
			}
		}
		if ready > 0 && firstReady == 0 {
			firstReady = time.Since(t0)
		}
		if ready == n {
			break
		}
		if time.Since(t0) > 45*time.Minute {
			t.Fatalf("only %d of %d claims Ready after %s", ready, n, time.Since(t0))
		}
		time.Sleep(500 * time.Millisecond)
	}
	total := time.Since(t0)
	cpu := procCPU(c.FunctionPid()) - cpu0
	t.Logf("BENCH claims=%d applied_in=%.1fs first_ready_in=%.1fs all_ready_in=%.1fs claims_per_min=%.0f function_cpu=%.1fs (%.0f%% of one core) function_peak_rss=%s",
		n, applied.Seconds(), firstReady.Seconds(), total.Seconds(), float64(n)/total.Minutes(), cpu.Seconds(), 100*cpu.Seconds()/total.Seconds(), procPeakRSS(c.FunctionPid()))
}

func startBench(t *testing.T) *local.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "redishttp-bench-") //nolint:usetesting // Kept on failure.
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := local.Start(ctx, local.Options{
		Dir: dir, RepoRoot: repoRoot(t), ToolDirs: filepath.SplitList(os.Getenv("REDISHTTP_TOOLS_BIN")), Mode: local.ModeClaim,
		Logf: t.Logf, NoPods: true,
	})
	t.Cleanup(func() {
		c.Stop()
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		}
	})
	if err != nil {
		t.Fatalf("cannot start the local control plane: %v (logs in %s/logs)", err, dir)
	}
	return c
}

// procCPU is the user+system CPU time of pid so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / 100
}

// procPeakRSS is the peak resident set size of pid (VmHWM).
func procPeakRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	return "?"
}
