package apikey

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestNamespaceDeletion deletes a tenant's namespace holding ApiKeys, with a
// real namespace controller (kube-controller-manager) emptying it: the
// namespace must go, and with it every ACL user of its ApiKeys. Before, the
// provider re-created its ProviderConfigUsage for each ApiKey being deleted,
// which a terminating namespace refuses: the ApiKeys and the namespace stayed
// forever (crossplane-runtime #1150).
func TestNamespaceDeletion(t *testing.T) {
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 20})
	ctx := context.Background()
	const ns = "team-gone"
	h.tenant(t, ns, "cache")
	names := []string{"web", "worker", "reports"}
	for _, n := range names {
		h.create(t, apiKey(ns, n, v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}, KeyPatterns: []string{n + ":*"}}))
	}
	var users []string
	for _, n := range names {
		testenv.Eventually(t, 30*time.Second, n+" Ready", func() error { return ready(h.get(t, ns, n)) })
		users = append(users, h.secret(t, ns, n+"-redis")[contract.KeyUsername])
	}

	startNamespaceController(t, h.cp.Kubeconfig(t))
	nsObj := &corev1.Namespace{}
	if err := h.kube.Get(ctx, types.NamespacedName{Name: ns}, nsObj); err != nil {
		t.Fatal(err)
	}
	if err := h.kube.Delete(ctx, nsObj); err != nil {
		t.Fatalf("cannot delete namespace %q: %v", ns, err)
	}
	testenv.Eventually(t, 2*time.Minute, "namespace "+ns+" gone", func() error {
		err := h.kube.Get(ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{})
		if kerrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		l := &v1alpha1.ApiKeyList{}
		_ = h.kube.List(ctx, l)
		var left []string
		for _, ak := range l.Items {
			left = append(left, ak.GetName()+": "+ak.GetCondition("Synced").Message)
		}
		return errorf("namespace still there; ApiKeys left: %q", left)
	})
	acl, err := h.admin.Do(ctx, "ACL", "LIST").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if strings.Contains(strings.Join(acl, "\n"), "user "+u+" ") {
			t.Errorf("ACL user %q outlived its namespace", u)
		}
	}
}

// startNamespaceController runs kube-controller-manager's namespace and
// garbage collector controllers against the test's API server until the test
// ends.
func startNamespaceController(t *testing.T, kubeconfig string) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--use-service-account-credentials=false", "--controllers=namespace,garbagecollector", "--v=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start kube-controller-manager: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}
