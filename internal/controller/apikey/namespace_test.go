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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		testenv.Eventually(t, 2*time.Minute, n+" Ready", func() error { return ready(h.get(t, ns, n)) })
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

// TestNamespaceDeletionOwnRedisProviderRestart deletes a tenant's namespace
// holding an ApiKey on a Redis of the tenant's own (connectionSecretRef), and
// restarts the provider while the ApiKey is being deleted: the namespace must
// go, and the ACL user with it. Before, the provider deleted the user with
// admin credentials it remembered in memory once the namespace controller
// had deleted the Secret: a restarted provider had none, and the user (a
// key that keeps working) stayed in the tenant's Redis.
func TestNamespaceDeletionOwnRedisProviderRestart(t *testing.T) {
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 20})
	ctx := context.Background()
	const ns = "team-byo-gone"
	h.byoTenant(t, ns, "my-redis")
	h.create(t, apiKey(ns, "web", v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}}))
	testenv.Eventually(t, 2*time.Minute, "web Ready", func() error { return ready(h.get(t, ns, "web")) })
	user := h.secret(t, ns, "web-redis")[contract.KeyUsername]

	// The ApiKey's deletion cannot finish for now: its Redis refuses to
	// delete users.
	if err := h.admin.Do(ctx, "ACL", "SETUSER", byoAdmin, "-acl|deluser").Err(); err != nil {
		t.Fatal(err)
	}
	startNamespaceController(t, h.cp.Kubeconfig(t))
	if err := h.kube.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("cannot delete namespace %q: %v", ns, err)
	}
	testenv.Eventually(t, 2*time.Minute, "deletion of web started and failing, Secret my-redis deleted", func() error {
		ak := &v1alpha1.ApiKey{}
		err := h.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, ak)
		if kerrors.IsNotFound(err) {
			// The provider gave up on the user: the check below tells.
			return nil
		}
		if err != nil {
			return err
		}
		if c := ak.GetCondition("Synced"); ak.GetDeletionTimestamp() == nil || c.Status != corev1.ConditionFalse {
			return errorf("ApiKey web: deleted at %v, Synced %+v", ak.GetDeletionTimestamp(), c)
		}
		if s := h.byoSecret(t, ns, "my-redis"); s != nil && s.GetDeletionTimestamp() == nil {
			return errorf("Secret my-redis not deleted yet")
		}
		return nil
	})

	// The provider restarts; meanwhile the Redis lets it delete users again.
	h.stop()
	if err := h.admin.Do(ctx, "ACL", "SETUSER", byoAdmin, "+acl|deluser").Err(); err != nil {
		t.Fatal(err)
	}
	h.restartProvider(t)

	testenv.Eventually(t, 2*time.Minute, "namespace "+ns+" gone", func() error {
		err := h.kube.Get(ctx, types.NamespacedName{Name: ns}, &corev1.Namespace{})
		if kerrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return errorf("namespace still there")
	})
	if h.aclUser(t, user) {
		t.Errorf("ACL user %q outlived its namespace: a deleted key still works", user)
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
