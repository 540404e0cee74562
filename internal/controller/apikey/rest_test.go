package apikey

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestRESTToken checks what an app reading an ApiKey's Secret gets when its
// instance has an HTTP gateway: the gateway's URLs and a REST token for the
// ApiKey's own user and key, a new token after a rotation (the old key, and
// so the old token, working through the grace period), and no REST keys once
// HTTP is off.
func TestRESTToken(t *testing.T) {
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 20})
	ctx := context.Background()
	const ns, url, inCluster = "team-http", "https://cache.example.com", "http://cache-http.team-http.svc.cluster.local:8080"
	h.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	in := &unstructured.Unstructured{}
	in.SetGroupVersionKind(InstanceGroupVersionKind)
	in.SetNamespace(ns)
	in.SetName("cache")
	in.Object["status"] = map[string]any{
		"endpoint": contract.ServiceHost("cache", ns, contract.DefaultClusterDomain), "port": int64(contract.RedisPort),
		"http": map[string]any{"url": url, "inClusterURL": inCluster},
	}
	h.create(t, in)
	h.create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: contract.AuthSecretName("cache")},
		StringData: map[string]string{contract.AuthPasswordKey: adminPassword},
	})
	h.create(t, apiKey(ns, "web", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}, KeyPatterns: []string{"app:*"}}))
	testenv.Eventually(t, 2*time.Minute, "web Ready", func() error { return ready(h.get(t, ns, "web")) })

	s := h.secret(t, ns, "web-redis")
	user, key := s[contract.KeyUsername], s[contract.KeyPassword]
	want := map[string]string{contract.KeyRESTURL: url, contract.KeyRESTURLInCluster: inCluster, contract.KeyRESTToken: contract.Token(user, key)}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("Secret key %s: want %q, got %q", k, v, s[k])
		}
	}

	h.update(t, ns, "web", func(ak *v1alpha1.ApiKey) {
		ak.Spec.ForProvider.Rotation = v1alpha1.Rotation{Serial: 1, GracePeriod: new("10m")}
	})
	testenv.Eventually(t, 2*time.Minute, "a new token after the rotation", func() error {
		s = h.secret(t, ns, "web-redis")
		if s[contract.KeyPassword] == key {
			return errorf("the Secret still holds the old key")
		}
		if got, want := s[contract.KeyRESTToken], contract.Token(user, s[contract.KeyPassword]); got != want {
			return errorf("token: want the new key's, got another")
		}
		return nil
	})
	if err := h.authenticates(user, key); err != nil {
		t.Errorf("the old key (and so its token) stopped working during the grace period: %v", err)
	}

	// HTTP switched off: the function removes the status fields. The
	// provider watches instances: the Secret loses its REST keys long
	// before the ApiKey's next poll (10 minutes here).
	if err := h.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cache"}, in); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(in.Object, "status", "http")
	if err := h.kube.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, "no REST keys once HTTP is off", func() error {
		s = h.secret(t, ns, "web-redis")
		for _, k := range restKeys {
			if _, ok := s[k]; ok {
				return errorf("the Secret still holds %s", k)
			}
		}
		return nil
	})

	// And switched on again: the REST keys are back, as soon.
	if err := h.kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cache"}, in); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedMap(in.Object, map[string]any{"url": url, "inClusterURL": inCluster}, "status", "http"); err != nil {
		t.Fatal(err)
	}
	if err := h.kube.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, "REST keys once HTTP is on again", func() error {
		s = h.secret(t, ns, "web-redis")
		if s[contract.KeyRESTURL] != url || s[contract.KeyRESTToken] != contract.Token(user, s[contract.KeyPassword]) {
			return errorf("the Secret has no REST URL and token yet")
		}
		return nil
	})
}
