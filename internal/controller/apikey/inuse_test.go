package apikey

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// byoAdmin is the user a tenant's own Redis is administered as.
const (
	byoAdmin         = "byo-admin"
	byoAdminPassword = "byo-admin-password-for-tests"
)

// byoTenant creates a namespace and, in it, Secrets holding the endpoint and
// an admin user of the test's redis-server: a Redis of the tenant's own.
func (h *harness) byoTenant(t testing.TB, ns string, secrets ...string) {
	t.Helper()
	if err := h.admin.Do(context.Background(), "ACL", "SETUSER", byoAdmin, "on", ">"+byoAdminPassword, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	h.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, name := range secrets {
		h.create(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			StringData: map[string]string{
				contract.KeyEndpoint: "127.0.0.1",
				contract.KeyPort:     strconv.Itoa(h.redis.Port),
				contract.KeyUsername: byoAdmin,
				contract.KeyPassword: byoAdminPassword,
			},
		})
	}
}

// byoSecret returns a connectionSecretRef Secret, nil once it is gone.
func (h *harness) byoSecret(t testing.TB, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	err := h.kube.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)
	if kerrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("cannot get Secret %q: %v", name, err)
	}
	return s
}

// protected reports whether a Secret exists and carries InUseFinalizer.
func (h *harness) protected(t testing.TB, ns, name string) bool {
	t.Helper()
	s := h.byoSecret(t, ns, name)
	return s != nil && controllerutil.ContainsFinalizer(s, InUseFinalizer)
}

// aclUser reports whether the test's Redis has an ACL user.
func (h *harness) aclUser(t testing.TB, user string) bool {
	t.Helper()
	acl, err := h.admin.Do(context.Background(), "ACL", "LIST").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(strings.Join(acl, "\n"), "user "+user+" ")
}

func (h *harness) deleteApiKey(t testing.TB, ns, name string) {
	t.Helper()
	if err := h.kube.Delete(context.Background(), &v1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil {
		t.Fatalf("cannot delete ApiKey %q: %v", name, err)
	}
}

func (h *harness) gone(ns, name string) func() error {
	return func() error {
		ak := &v1alpha1.ApiKey{}
		err := h.kube.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ak)
		if kerrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return errorf("ApiKey %q still there: %+v", name, ak.GetCondition("Synced"))
	}
}

// TestSecretInUse covers the in-use protection of connectionSecretRef
// Secrets against a real kube-apiserver and redis-server.
func TestSecretInUse(t *testing.T) {
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 20})
	ctx := context.Background()

	t.Run("SharedSecretGoesWithTheLastUser", func(t *testing.T) {
		const ns = "team-shared"
		h.byoTenant(t, ns, "my-redis")
		names := []string{"a", "b", "c"}
		users := map[string]string{}
		keys := map[string]string{}
		for _, n := range names {
			h.create(t, apiKey(ns, n, v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}}))
		}
		for _, n := range names {
			testenv.Eventually(t, 2*time.Minute, n+" Ready", func() error { return ready(h.get(t, ns, n)) })
			s := h.secret(t, ns, n+"-redis")
			users[n], keys[n] = s[contract.KeyUsername], s[contract.KeyPassword]
		}
		if !h.protected(t, ns, "my-redis") {
			t.Fatalf("Secret %q in use has no finalizer %q", "my-redis", InUseFinalizer)
		}

		h.deleteApiKey(t, ns, "a")
		testenv.Eventually(t, 2*time.Minute, "ApiKey a gone", h.gone(ns, "a"))
		if h.aclUser(t, users["a"]) {
			t.Errorf("ACL user %q outlived its ApiKey", users["a"])
		}
		if !h.protected(t, ns, "my-redis") {
			t.Fatalf("Secret %q lost its finalizer while ApiKeys b and c use it", "my-redis")
		}

		// The tenant deletes the Secret: it waits for its users.
		if err := h.kube.Delete(ctx, h.byoSecret(t, ns, "my-redis")); err != nil {
			t.Fatal(err)
		}
		if s := h.byoSecret(t, ns, "my-redis"); s == nil || s.GetDeletionTimestamp() == nil {
			t.Fatalf("Secret %q in use should be terminating, not gone", "my-redis")
		}
		if err := h.authenticates(users["b"], keys["b"]); err != nil {
			t.Errorf("key b stopped working when its admin Secret was deleted: %v", err)
		}

		// Both remaining ApiKeys go at once: neither may leave the
		// finalizer to the other.
		var wg sync.WaitGroup
		for _, n := range []string{"b", "c"} {
			wg.Go(func() { h.deleteApiKey(t, ns, n) })
		}
		wg.Wait()
		testenv.Eventually(t, 2*time.Minute, "Secret my-redis gone", func() error {
			if s := h.byoSecret(t, ns, "my-redis"); s != nil {
				return errorf("Secret still there with finalizers %q", s.GetFinalizers())
			}
			return nil
		})
		for _, n := range []string{"b", "c"} {
			testenv.Eventually(t, 2*time.Minute, "ApiKey "+n+" gone", h.gone(ns, n))
			if h.aclUser(t, users[n]) {
				t.Errorf("ACL user %q outlived its ApiKey", users[n])
			}
		}
	})

	t.Run("UserLeftAloneNeedsNoSecret", func(t *testing.T) {
		const ns = "team-orphan"
		h.byoTenant(t, ns, "my-redis")
		ak := apiKey(ns, "web", v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}})
		ak.Spec.ManagementPolicies = xpv2.ManagementPolicies{xpv2.ManagementActionObserve, xpv2.ManagementActionCreate, xpv2.ManagementActionUpdate, xpv2.ManagementActionLateInitialize}
		h.create(t, ak)
		testenv.Eventually(t, 2*time.Minute, "web Ready", func() error { return ready(h.get(t, ns, "web")) })
		if h.protected(t, ns, "my-redis") {
			t.Errorf("Secret %q is protected for an ApiKey that never deletes its user", "my-redis")
		}
	})

	t.Run("TheRedisCannotChange", func(t *testing.T) {
		const ns = "team-switch"
		h.byoTenant(t, ns, "old", "new")
		h.create(t, apiKey(ns, "web", v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "old"}}))
		testenv.Eventually(t, 2*time.Minute, "web Ready", func() error { return ready(h.get(t, ns, "web")) })
		// Moving the key would leave its user, with a working key, in the
		// old Redis: the API server refuses it, saying what to do.
		for name, move := range map[string]func(*v1alpha1.ApiKeyParameters){
			"AnotherSecret": func(p *v1alpha1.ApiKeyParameters) {
				p.ConnectionSecretRef = &v1alpha1.LocalReference{Name: "new"}
			},
			"AnInstance": func(p *v1alpha1.ApiKeyParameters) {
				p.ConnectionSecretRef, p.InstanceRef = nil, &v1alpha1.LocalReference{Name: "cache"}
			},
		} {
			ak := h.get(t, ns, "web")
			move(&ak.Spec.ForProvider)
			if err := h.kube.Update(ctx, ak); err == nil || !strings.Contains(err.Error(), "create an ApiKey for the other Redis and delete this one") {
				t.Errorf("%s: moving an ApiKey to another Redis: want it refused saying what to do, got %v", name, err)
			}
		}
		// Its other fields still change.
		h.update(t, ns, "web", func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider.KeyPatterns = []string{"app:*"} })
		if !h.protected(t, ns, "old") {
			t.Errorf("Secret %q in use has no finalizer %q", "old", InUseFinalizer)
		}
	})

	t.Run("NoLongerDeletingItsUserReleasesTheSecret", func(t *testing.T) {
		const ns = "team-policy"
		h.byoTenant(t, ns, "my-redis")
		h.create(t, apiKey(ns, "web", v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "my-redis"}}))
		testenv.Eventually(t, 2*time.Minute, "web Ready and its Secret protected", func() error {
			if err := ready(h.get(t, ns, "web")); err != nil {
				return err
			}
			if !h.protected(t, ns, "my-redis") {
				return errorf("Secret %q in use has no finalizer %q", "my-redis", InUseFinalizer)
			}
			return nil
		})
		// The key will be orphaned: its user stays, the Secret is not needed
		// to delete it.
		h.update(t, ns, "web", func(ak *v1alpha1.ApiKey) {
			ak.Spec.ManagementPolicies = xpv2.ManagementPolicies{xpv2.ManagementActionObserve, xpv2.ManagementActionCreate, xpv2.ManagementActionUpdate, xpv2.ManagementActionLateInitialize}
		})
		testenv.Eventually(t, 2*time.Minute, "Secret my-redis released", func() error {
			if h.protected(t, ns, "my-redis") {
				return errorf("finalizers: %q", h.byoSecret(t, ns, "my-redis").GetFinalizers())
			}
			if got := h.get(t, ns, "web").Status.AtProvider; got.ConnectionSecretInUse != "" || len(got.ConnectionSecretsToRelease) > 0 {
				return errorf("status.atProvider: %+v", got)
			}
			return nil
		})
		if err := h.kube.Delete(ctx, h.byoSecret(t, ns, "my-redis")); err != nil {
			t.Fatal(err)
		}
		if h.byoSecret(t, ns, "my-redis") != nil {
			t.Errorf("Secret %q no ApiKey uses any more should be deleted at once", "my-redis")
		}
	})
}

// TestUsers covers which ApiKeys keep a connectionSecretRef Secret in use.
func TestUsers(t *testing.T) {
	item := func(name, inUse string, deleting bool, policies []any) map[string]any {
		o := map[string]any{
			"metadata": map[string]any{"name": name, "namespace": "team-a"},
			"spec":     map[string]any{},
			"status":   map[string]any{"atProvider": map[string]any{"connectionSecretInUse": inUse}},
		}
		if deleting {
			o["metadata"].(map[string]any)["deletionTimestamp"] = "2026-01-01T00:00:00Z"
		}
		if policies != nil {
			o["spec"].(map[string]any)["managementPolicies"] = policies
		}
		return o
	}
	type args struct {
		items    []map[string]any
		policies bool
	}
	cases := map[string]struct {
		reason string
		args   args
		want   []string
	}{
		"RecordedUsers": {
			reason: "ApiKeys that record the Secret use it, live or being deleted; one recording another Secret, or none (it never connected, or let go), does not.",
			args: args{items: []map[string]any{
				item("live", "my-redis", false, nil),
				item("deleting", "my-redis", true, nil),
				item("other", "their-redis", false, nil),
				item("let-go", "", true, nil),
			}, policies: true},
			want: []string{"live", "deleting"},
		},
		"OrphanBeingDeleted": {
			reason: "An ApiKey being deleted whose policies leave its user alone no longer needs the Secret; a live one with the same policies still counts.",
			args: args{items: []map[string]any{
				item("orphan-deleting", "my-redis", true, []any{"Observe", "Create", "Update", "LateInitialize"}),
				item("orphan-live", "my-redis", false, []any{"Observe", "Create", "Update", "LateInitialize"}),
			}, policies: true},
			want: []string{"orphan-live"},
		},
		"PausedBeingDeleted": {
			reason: "A paused ApiKey being deleted decides what to do with its user once resumed: it keeps the Secret.",
			args:   args{items: []map[string]any{item("paused", "my-redis", true, []any{})}, policies: true},
			want:   []string{"paused"},
		},
		"PoliciesDisabled": {
			reason: "Without management policies every ApiKey deletes its user: one being deleted keeps the Secret.",
			args:   args{items: []map[string]any{item("deleting", "my-redis", true, []any{"Observe"})}, policies: false},
			want:   []string{"deleting"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			live := &test.MockClient{MockList: func(_ context.Context, obj client.ObjectList, _ ...client.ListOption) error {
				l := obj.(*unstructured.UnstructuredList)
				for _, o := range tc.args.items {
					l.Items = append(l.Items, unstructured.Unstructured{Object: o})
				}
				return nil
			}}
			got, err := inUse{live: live, policies: tc.args.policies}.users(context.Background(), "team-a", "my-redis")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nusers(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
