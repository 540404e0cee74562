//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// rest sends one command to the gateway at url with token, as
// @upstash/redis does, and returns the status and the JSON reply.
func rest(ctx context.Context, url, token string, cmd ...string) (int, map[string]any, error) {
	out := map[string]any{}
	status, err := postREST(ctx, url+"/", token, cmd, &out)
	return status, out, err
}

// postREST posts payload as JSON to the gateway's url with token and
// decodes its JSON reply into out.
func postREST(ctx context.Context, url, token string, payload, out any) (int, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(rsp.Body, 1<<20))
	if err != nil {
		return rsp.StatusCode, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return rsp.StatusCode, fmt.Errorf("reply %q: %w", b, err)
	}
	return rsp.StatusCode, nil
}

// gatewayURL is where this machine reaches the instance's gateway.
func gatewayURL(ctx context.Context, t *testing.T, c *local.Cluster) (string, string) {
	t.Helper()
	url, token, err := c.RESTEndpoint(ctx, teamA, "cache-redis", name)
	if err != nil {
		t.Fatal(err)
	}
	if url == "" {
		t.Fatalf("connection Secret cache-redis has no %s", contract.KeyRESTToken)
	}
	return url, token
}

// httpSteps prove issue 8's gateway on the platform: composed, Ready, the
// instance's and an ApiKey's REST tokens.
func httpSteps(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("GatewayReadyInstanceTokenWritesOverHTTP", func(t *testing.T) {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: contract.GatewayName(name)}, d); err != nil {
			t.Fatal(err)
		}
		if d.Status.AvailableReplicas < 1 {
			t.Errorf("gateway Deployment %s: %d available replicas, though the instance is Ready", d.Name, d.Status.AvailableReplicas)
		}
		s := &corev1.Secret{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "cache-redis"}, s); err != nil {
			t.Fatal(err)
		}
		if got, want := string(s.Data[contract.KeyRESTURL]), contract.GatewayURL(name, teamA, "cluster.local"); got != want {
			t.Errorf("connection Secret %s: want %q, got %q", contract.KeyRESTURL, want, got)
		}
		url, token := gatewayURL(ctx, t, c)
		testenv.Eventually(t, 2*time.Minute, "SET over HTTP with the instance's REST token", func() error {
			status, out, err := rest(ctx, url, token, "SET", "http:hello", "from-http")
			if err != nil || status != http.StatusOK || out["result"] != "OK" {
				return fmt.Errorf("status %d, reply %v, %w", status, out, err)
			}
			return nil
		})
		rc, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		if v, err := rc.Get(ctx, "http:hello").Result(); err != nil || v != "from-http" {
			t.Errorf("the key written over HTTP, read with the Redis protocol: %q, %v", v, err)
		}
		if status, _, _ := rest(ctx, url, contract.Token(contract.AdminUser, "wrong"), "GET", "http:hello"); status != http.StatusUnauthorized {
			t.Errorf("a wrong token: want 401, got %d", status)
		}
	})
}

// apiKeyRESTStep proves an ApiKey's REST token is scoped like its key.
func apiKeyRESTStep(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("ApiKeyRESTTokenScoped", func(t *testing.T) {
		url, _ := gatewayURL(ctx, t, c)
		s := &corev1.Secret{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "web-redis"}, s); err != nil {
			t.Fatal(err)
		}
		// The token format of the gateway contract, from the key's user and
		// password (the provider publishes it as UPSTASH_REDIS_REST_TOKEN).
		token := contract.Token(string(s.Data[contract.KeyUsername]), string(s.Data[contract.KeyPassword]))
		if got := s.Data[contract.KeyRESTToken]; len(got) > 0 && string(got) != token {
			t.Errorf("ApiKey Secret %s is not the key's token", contract.KeyRESTToken)
		}
		testenv.Eventually(t, 2*time.Minute, "SET app:rest with the ApiKey's REST token", func() error {
			status, out, err := rest(ctx, url, token, "SET", "app:rest", "1")
			if err != nil || status != http.StatusOK || out["result"] != "OK" {
				return fmt.Errorf("status %d, reply %v, %w", status, out, err)
			}
			return nil
		})
		_, out, err := rest(ctx, url, token, "SET", "billing:rest", "1")
		if err != nil || !strings.Contains(fmt.Sprint(out["error"]), "NOPERM") {
			t.Errorf("SET billing:rest outside the key pattern over HTTP: want a NOPERM error, got %v, %v", out, err)
		}
	})
}

// httpOffStep proves the Ingress and that switching HTTP off removes the
// gateway and keeps the data.
func httpOffStep(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("IngressThenHTTPOffKeepsData", func(t *testing.T) {
		const host = "cache-team-a.redis.example.com"
		o := instance(t, teamA)
		if err := unstructured.SetNestedMap(o.Object, map[string]any{"enabled": true, "ingress": map[string]any{"host": host}}, "spec", "http"); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, o); err != nil {
			t.Fatal(err)
		}
		gw := client.ObjectKey{Namespace: teamA, Name: contract.GatewayName(name)}
		testenv.Eventually(t, 2*time.Minute, "Ingress with the host and the gateway Service as backend", func() error {
			ing := &networkingv1.Ingress{}
			if err := c.Client.Get(ctx, gw, ing); err != nil {
				return err
			}
			if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != host || ing.Spec.Rules[0].HTTP == nil || len(ing.Spec.Rules[0].HTTP.Paths) == 0 {
				return fmt.Errorf("rules %+v", ing.Spec.Rules)
			}
			b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
			if b == nil || b.Name != gw.Name || b.Port.Number != contract.GatewayPort {
				return fmt.Errorf("backend %+v", b)
			}
			return nil
		})
		// The example's spec.memory undoes the earlier resize: let that roll
		// finish, then remember the StatefulSet and its pod, which switching
		// HTTP off must leave alone.
		stsKey := client.ObjectKey{Namespace: teamA, Name: contract.StatefulSetName(name)}
		sts := &appsv1.StatefulSet{}
		testenv.Eventually(t, 2*time.Minute, "the StatefulSet rolled out and Ready", func() error {
			if err := c.Client.Get(ctx, stsKey, sts); err != nil {
				return err
			}
			if l := sts.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; l.String() != "256Mi" {
				return fmt.Errorf("memory limit %s, the example's is 256Mi", l.String())
			}
			st := sts.Status
			if st.ObservedGeneration != sts.Generation || st.UpdatedReplicas != 1 || st.ReadyReplicas != 1 || st.CurrentRevision != st.UpdateRevision {
				return fmt.Errorf("status %+v", st)
			}
			return nil
		})
		pod := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: contract.StatefulSetName(name) + "-0"}, pod); err != nil {
			t.Fatal(err)
		}
		rc, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		writeKeys(ctx, t, rc)
		if err := unstructured.SetNestedMap(o.Object, map[string]any{"enabled": false}, "spec", "http"); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, o); err != nil {
			t.Fatal(err)
		}
		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &networkingv1.Ingress{}} {
			testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%T %s removed", obj, gw.Name), func() error {
				if err := c.Client.Get(ctx, gw, obj); !kerrors.IsNotFound(err) {
					return errors.New("still there")
				}
				return nil
			})
		}
		if err := c.WaitInstanceReady(ctx, teamA, name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		// Redis untouched: the same StatefulSet generation and the same pod.
		after := &appsv1.StatefulSet{}
		if err := c.Client.Get(ctx, stsKey, after); err != nil {
			t.Fatal(err)
		}
		if after.Generation != sts.Generation {
			t.Errorf("switching HTTP off changed the StatefulSet (generation %d -> %d): it must leave Redis untouched", sts.Generation, after.Generation)
		}
		podAfter := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), podAfter); err != nil || podAfter.UID != pod.UID {
			t.Errorf("switching HTTP off replaced the Redis pod (%v): it must leave Redis untouched", err)
		}
		rcAfter, _ := redisClient(ctx, t, c, teamA, "cache-redis")
		testenv.Eventually(t, 2*time.Minute, "PING after http off", func() error { return ping(ctx, rcAfter) })
		if missing, err := missingKeys(ctx, rcAfter); err != nil || missing > 0 {
			t.Errorf("switching HTTP off lost %d of %d keys (%v)", missing, dataKeys, err)
		}
		// The provider watches instances: the ApiKey's Secret follows HTTP
		// off and on without waiting for the ApiKey's poll (scenarioPoll in
		// this scenario, longer than the wait: only the watch makes it).
		apiKeyREST := func(want bool) func() error {
			return func() error {
				s := &corev1.Secret{}
				if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "web-redis"}, s); err != nil {
					return err
				}
				if _, ok := s.Data[contract.KeyRESTURL]; ok != want {
					return fmt.Errorf("the ApiKey's Secret holds %s: %v, want %v", contract.KeyRESTURL, ok, want)
				}
				return nil
			}
		}
		testenv.Eventually(t, 3*time.Minute, "the ApiKey's Secret without REST keys once HTTP is off", apiKeyREST(false))
		// On again, for the steps after this one.
		if err := c.Apply(ctx, instance(t, teamA)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 3*time.Minute, "the ApiKey's Secret with REST keys once HTTP is on", apiKeyREST(true))
		if err := c.WaitInstanceReady(ctx, teamA, name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	})
}

// apiKeyRotationStep proves an ApiKey's REST token follows a rotation: the
// new token works at once, the old one through the grace period, and is
// refused after it.
func apiKeyRotationStep(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("ApiKeyRESTTokenRotation", func(t *testing.T) {
		url, _ := gatewayURL(ctx, t, c)
		tokenOf := func() (string, error) {
			s := &corev1.Secret{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "web-redis"}, s); err != nil {
				return "", err
			}
			return contract.Token(string(s.Data[contract.KeyUsername]), string(s.Data[contract.KeyPassword])), nil
		}
		old, err := tokenOf()
		if err != nil {
			t.Fatal(err)
		}
		key, err := c.Get(ctx, "redishttp.io/v1alpha1", "ApiKey", teamA, "web")
		if err != nil {
			t.Fatal(err)
		}
		serial, _, _ := unstructured.NestedInt64(key.Object, "spec", "forProvider", "rotation", "serial")
		const grace = 15 * time.Second
		patch := fmt.Sprintf(`{"spec":{"forProvider":{"rotation":{"serial":%d,"gracePeriod":"%s"}}}}`, serial+1, grace)
		// The rotation happens after this: time since it bounds the time
		// since the rotation from above.
		at := time.Now()
		if err := c.Client.Patch(ctx, key, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
		var rotated string
		testenv.Eventually(t, 2*time.Minute, "the connection Secret carries the rotated key", func() error {
			tok, err := tokenOf()
			if err != nil {
				return err
			}
			if tok == old {
				return errors.New("not rotated yet")
			}
			rotated = tok
			return nil
		})
		works := func(token string) error {
			status, out, err := rest(ctx, url, token, "SET", "app:rotation", "1")
			if err != nil || status != http.StatusOK || out["result"] != "OK" {
				return fmt.Errorf("status %d, reply %v, %w", status, out, err)
			}
			return nil
		}
		testenv.Eventually(t, 2*time.Minute, "the rotated token works", func() error { return works(rotated) })
		if err := works(old); err != nil && time.Since(at) < grace {
			t.Errorf("the old token within the %s grace period: %v", grace, err)
		}
		testenv.Eventually(t, 2*time.Minute, "the old token refused after the grace period", func() error {
			status, _, _ := rest(ctx, url, old, "GET", "app:rotation")
			if status != http.StatusUnauthorized {
				return fmt.Errorf("status %d", status)
			}
			return nil
		})
		if time.Since(at) < grace {
			t.Errorf("the old token was refused %.0fs after the rotation, within its %s grace period", time.Since(at).Seconds(), grace)
		}
		if err := works(rotated); err != nil {
			t.Errorf("the rotated token after the grace period: %v", err)
		}
	})
}
