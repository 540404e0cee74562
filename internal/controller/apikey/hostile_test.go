package apikey

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// TestOneTenantCannotStopTheProvider runs the provider against a real
// kube-apiserver and redis-server while tenants do their worst: an ApiKey
// stored before the schema bounded gracePeriod, one whose stored status the
// provider cannot decode at all, Secrets pointing at a hostile fake Redis,
// at a server that never answers (many of them), at a non-Redis server, and
// credentials that would smuggle commands. The other tenant's keys still
// become Ready, each hostile key gets a condition of its own, and the
// provider process survives.
func TestOneTenantCannotStopTheProvider(t *testing.T) {
	const bad, mute, good = "team-bad", "team-mute", "team-good"
	hostile := testenv.StartFakeRedis(t, "*100000000000000\r\n")
	silent := testenv.StartFakeRedis(t, "")
	banner := testenv.StartFakeRedis(t, "HTTP/1.1 400 banner-secret\r\n\r\n")

	h := startHarness(t, harnessOptions{
		pollInterval: 10 * time.Minute,
		rate:         10,
		// The CRD as an older release installed it: without the bounds
		// that now refuse these values.
		crds: looseCRDs(t),
		before: func(kube client.Client) {
			ctx := context.Background()
			create := func(o client.Object) {
				if err := kube.Create(ctx, o); err != nil {
					t.Fatalf("cannot create %T %q: %v", o, o.GetName(), err)
				}
			}
			create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: bad}})
			create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mute}})
			overflow := unstructuredApiKey(bad, "overflow", map[string]any{
				"instanceRef": map[string]any{"name": "cache"},
				"rotation":    map[string]any{"serial": int64(1), "gracePeriod": "2562048h"},
			})
			create(overflow)
			undecodable := unstructuredApiKey(bad, "undecodable", map[string]any{"instanceRef": map[string]any{"name": "cache"}})
			create(undecodable)
			undecodable.Object["status"] = map[string]any{"atProvider": map[string]any{"previousKeyExpiresAt": "not-a-time"}}
			if err := kube.Status().Update(ctx, undecodable); err != nil {
				t.Fatalf("cannot write the undecodable status: %v", err)
			}
		},
	})
	ctx := context.Background()

	// A stand-in for the Redis of a tenant's instance, so that the bad
	// tenant's instanceRef keys have somewhere to go.
	h.tenant(t, good, "cache")
	in := &unstructured.Unstructured{}
	in.SetGroupVersionKind(InstanceGroupVersionKind)
	in.SetNamespace(bad)
	in.SetName("cache")
	h.create(t, in)
	h.create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: bad, Name: contract.AuthSecretName("cache")},
		StringData: map[string]string{contract.AuthPasswordKey: adminPassword},
	})

	byo := func(ns, name, addr, password string) {
		h.create(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			StringData: map[string]string{contract.KeyEndpoint: strings.Split(addr, ":")[0], contract.KeyPort: strings.Split(addr, ":")[1], contract.KeyPassword: password},
		})
	}
	byo(bad, "hostile", hostile.Addr, "pw")
	byo(mute, "silent", silent.Addr, "pw")
	byo(bad, "banner", banner.Addr, "pw")
	byo(bad, "smuggler", hostile.Addr, "pw\r\nFLUSHALL")
	for _, n := range []string{"hostile", "banner", "smuggler"} {
		h.create(t, apiKey(bad, n, v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: n}}))
	}
	// In another namespace, many keys on a Redis that never answers, enough
	// to hold every worker for minutes if each waited for it in turn; and as
	// many on Redis servers of their own that never answer. (A namespace's
	// keys on servers that never answered share a few workers: they may
	// delay each other, never another namespace.)
	for i := range 40 {
		h.create(t, apiKey(mute, "silent-"+string(rune('a'+i/26))+string(rune('a'+i%26)), v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: "silent"}}))
	}
	for i := range 40 {
		name := "mute-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		byo(mute, name, testenv.StartFakeRedis(t, "").Addr, "pw")
		h.create(t, apiKey(mute, name, v1alpha1.ApiKeyParameters{ConnectionSecretRef: &v1alpha1.LocalReference{Name: name}}))
	}
	<-silent.Got
	start := time.Now()

	h.create(t, apiKey(good, "web", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}, KeyPatterns: []string{"app:*"}}))
	// The bound fails a stuck test; it is no performance figure. Before the
	// fix this key was never Ready: the cache never synced.
	testenv.Eventually(t, 2*time.Minute, "the good tenant's key Ready", func() error { return ready(h.get(t, good, "web")) })
	t.Logf("the good tenant's key was Ready %s after it was created", time.Since(start).Round(100*time.Millisecond))
	s := h.secret(t, good, "web-redis")
	if err := h.authenticates(s[contract.KeyUsername], s[contract.KeyPassword]); err != nil {
		t.Errorf("the good tenant's key does not authenticate: %v", err)
	}

	for name, want := range map[string]string{
		"overflow": `cannot use spec.forProvider.rotation.gracePeriod "2562048h"`,
		"hostile":  "cannot read the Redis reply",
		"banner":   "cannot read the Redis reply",
		"smuggler": "cannot use the Redis password: it contains control characters",
	} {
		testenv.Eventually(t, 2*time.Minute, name+" Synced=False saying why", func() error {
			c := h.get(t, bad, name).GetCondition(xpv2.TypeSynced)
			if c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, want) {
				return errorf("want Synced=False with %q, got %s %q", want, c.Status, c.Message)
			}
			if strings.Contains(c.Message, "banner-secret") {
				t.Errorf("%s: the condition echoes the peer: %q", name, c.Message)
			}
			return nil
		})
	}
	testenv.Eventually(t, 2*time.Minute, "silent-aa Synced=False", func() error {
		if c := h.get(t, mute, "silent-aa").GetCondition(xpv2.TypeSynced); c.Status != corev1.ConditionFalse {
			return errorf("want Synced=False, got %s %q", c.Status, c.Message)
		}
		return nil
	})
	if n := hostile.Commands.Load(); n == 0 {
		t.Error("the hostile Redis was never asked anything: the test proves nothing")
	}

	// The undecodable key is not reconciled, but its owner is told.
	testenv.Eventually(t, 2*time.Minute, "an event on the undecodable key", func() error {
		l := &corev1.EventList{}
		if err := h.kube.List(ctx, l, client.InNamespace(bad)); err != nil {
			return err
		}
		for _, e := range l.Items {
			if e.InvolvedObject.Name == "undecodable" && e.Reason == string(reasonUndecodable) {
				return nil
			}
		}
		return errorf("no %s event on ApiKey undecodable", reasonUndecodable)
	})
	// And its condition says so, as kubectl get apikey shows it; written
	// once, not again each time the ApiKey is listed.
	var rv string
	testenv.Eventually(t, 2*time.Minute, "undecodable Synced=False saying why", func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind)
		if err := h.kube.Get(ctx, types.NamespacedName{Namespace: bad, Name: "undecodable"}, u); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == string(xpv2.TypeSynced) && m["status"] == string(corev1.ConditionFalse) && strings.Contains(fmt.Sprint(m["message"]), errUndecodable) {
				rv = u.GetResourceVersion()
				return nil
			}
		}
		return errorf("want Synced=False with %q, got conditions %v", errUndecodable, conds)
	})
	time.Sleep(2 * time.Second)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind)
	if err := h.kube.Get(ctx, types.NamespacedName{Namespace: bad, Name: "undecodable"}, u); err != nil {
		t.Fatal(err)
	}
	if u.GetResourceVersion() != rv {
		t.Errorf("the undecodable ApiKey was written again after its condition was set: resourceVersion %s -> %s", rv, u.GetResourceVersion())
	}
}

// unstructuredApiKey returns an ApiKey as a tenant would write it, including
// values the typed API would not let a test express.
func unstructuredApiKey(ns, name string, forProvider map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.ApiKeyGroupVersionKind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.Object["spec"] = map[string]any{
		"forProvider":                forProvider,
		"writeConnectionSecretToRef": map[string]any{"name": name + "-redis"},
	}
	return u
}

// looseCRDs writes the provider's CRDs without the bounds on gracePeriod and
// without the date-time format of previousKeyExpiresAt: values an older
// schema let through, or a status written by hand.
func looseCRDs(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "package", "provider", "crds")
	dir := t.TempDir()
	files, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() == "redishttp.io_apikeys.yaml" {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.Unmarshal(b, crd); err != nil {
				t.Fatal(err)
			}
			spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			fp := spec.Properties["forProvider"]
			rot := fp.Properties["rotation"]
			rot.Properties["gracePeriod"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			fp.Properties["rotation"] = rot
			spec.Properties["forProvider"] = fp
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
			status := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"]
			at := status.Properties["atProvider"]
			at.Properties["previousKeyExpiresAt"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			status.Properties["atProvider"] = at
			crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"] = status
			if b, err = yaml.Marshal(crd); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
