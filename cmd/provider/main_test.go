package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis"
	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/controller/apikey"
	"github.com/ai-decenter/redishttp/internal/testenv"

	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// TestMain lets TestProviderBinary run this very binary as the provider.
func TestMain(m *testing.M) {
	if os.Getenv("REDISHTTP_PROVIDER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProviderBinary runs the provider as a process against a real
// kube-apiserver with KUBECONFIG, the way `make dev` does: it must serve its
// probes before its CRDs exist (safe-start), start its controllers once they
// are installed, take the leader election Lease, make an ApiKey Ready, never
// log the key even at debug level, serve metrics, and exit cleanly on SIGTERM.
func TestProviderBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs the provider against a real kube-apiserver, etcd and redis-server")
	}
	cp := testenv.StartControlPlane(t)
	// The API server watches Secrets itself (service account tokens).
	baseWatches, err := secretWatches(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.StartRedis(t, "--requirepass", "admin")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	healthAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))

	out := &syncBuffer{}
	cmd := exec.Command(os.Args[0],
		"--debug", "--poll-interval=1s", "--max-reconcile-rate=20",
		"--leader-election", "--leader-election-namespace=default",
		"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+healthAddr)
	cmd.Env = append(os.Environ(), "REDISHTTP_PROVIDER_MAIN=1", "KUBECONFIG="+cp.Kubeconfig(t))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start the provider: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("provider output:\n%s", out.String())
		}
	})

	get := func(url string) (int, string, error) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	testenv.Eventually(t, 2*time.Minute, "provider ready before its CRDs exist", func() error {
		select {
		case err := <-exited:
			t.Fatalf("the provider exited: %v", err)
		default:
		}
		code, _, err := get("http://" + healthAddr + "/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/readyz: %d", code)
		}
		return err
	})

	// safe-start: the CRDs arrive after the provider started.
	cp.InstallCRDs(t, filepath.Join("..", "..", "package", "provider", "crds"), testenv.WriteInstanceCRD(t))

	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apis.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	kube, err := client.New(cp.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := &unstructured.Unstructured{}
	in.SetGroupVersionKind(apikey.InstanceGroupVersionKind)
	in.SetNamespace("default")
	in.SetName("cache")
	for _, o := range []client.Object{
		&v1alpha1.ClusterProviderConfig{
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec:       v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{AddressOverride: r.Addr}},
		},
		in,
		// The instance's auth Secret, as the function composes it.
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: contract.AuthSecretName("cache")},
			StringData: map[string]string{contract.AuthPasswordKey: "admin", contract.AuthFileKey: "requirepass admin\n"},
		},
		&v1alpha1.ApiKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: v1alpha1.ApiKeySpec{
				ManagedResourceSpec: xpv2.ManagedResourceSpec{WriteConnectionSecretToReference: &xpv2.LocalSecretReference{Name: "web-redis"}},
				ForProvider:         v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}},
			},
		},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatalf("cannot create %T: %v", o, err)
		}
	}
	testenv.Eventually(t, 2*time.Minute, "ApiKey Ready", func() error {
		ak := &v1alpha1.ApiKey{}
		if err := kube.Get(ctx, types.NamespacedName{Namespace: "default", Name: "web"}, ak); err != nil {
			return err
		}
		if c := ak.GetCondition(xpv2.TypeReady); c.Status != corev1.ConditionTrue {
			return fmt.Errorf("not Ready: %+v", ak.Status)
		}
		return nil
	})

	sec := &corev1.Secret{}
	if err := kube.Get(ctx, types.NamespacedName{Namespace: "default", Name: "web-redis"}, sec); err != nil {
		t.Fatal(err)
	}
	key := string(sec.Data[contract.KeyPassword])
	if key == "" {
		t.Fatal("the connection Secret has no key")
	}
	if strings.Contains(out.String(), key) {
		t.Error("the provider logged the key")
	}
	events := &corev1.EventList{}
	if err := kube.List(ctx, events, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, key) {
			t.Errorf("event %q shows the key", e.Reason)
		}
	}

	// Tenants' Secrets stay out of the provider's memory: it reads and
	// writes the few it needs through the API server and watches none.
	if n, err := secretWatches(cp.Config); err != nil || n != baseWatches {
		t.Errorf("Secret watches open at the API server: want %d (the API server's own), got %d (%v)", baseWatches, n, err)
	}

	lease := &coordinationv1.Lease{}
	if err := kube.Get(ctx, types.NamespacedName{Namespace: "default", Name: "crossplane-leader-election-provider-redishttp"}, lease); err != nil {
		t.Errorf("no leader election Lease: %v", err)
	}
	if code, body, err := get("http://" + metricsAddr + "/metrics"); err != nil || code != http.StatusOK || !strings.Contains(body, "crossplane_managed_resource") {
		t.Errorf("/metrics: want 200 with crossplane_managed_resource metrics, got %d (%v)", code, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("provider exit on SIGTERM: want status 0, got %v", err)
		}
	case <-time.After(45 * time.Second):
		t.Error("provider did not exit within 45s of SIGTERM")
	}
}

// secretWatches returns how many watches of Secrets the API server is
// serving. The test's own client watches nothing, and envtest runs no
// controller manager, so any watch beyond the API server's own is the
// provider's.
func secretWatches(cfg *rest.Config) (int, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("API server /metrics: %d", resp.StatusCode)
	}
	n, seen := 0, false
	for l := range strings.Lines(string(b)) {
		if !strings.HasPrefix(l, "apiserver_longrunning_requests{") {
			continue
		}
		seen = true
		if !strings.Contains(l, `resource="secrets"`) || !strings.Contains(l, `verb="WATCH"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(l[strings.LastIndex(l, " ")+1:], &v); err != nil {
			return 0, fmt.Errorf("cannot parse %q: %w", strings.TrimSpace(l), err)
		}
		n += int(v)
	}
	if !seen {
		return 0, errors.New("API server /metrics has no apiserver_longrunning_requests")
	}
	return n, nil
}
