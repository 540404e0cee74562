package fn

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// observedDeployment is the gateway's Deployment as observed, with its
// Available condition.
func observedDeployment(generation, observedGeneration int, available string) *fnv1.Resource {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "cache-http", "namespace": "team-a", "generation": generation},
		"status": map[string]any{"observedGeneration": observedGeneration, "conditions": []any{
			map[string]any{"type": "Available", "status": available},
		}},
	})
	return &fnv1.Resource{Resource: s}
}

func TestRunFunctionHTTPReadiness(t *testing.T) {
	type want struct {
		phase string
		ready fnv1.Ready
	}
	cases := map[string]struct {
		reason  string
		gateway *fnv1.Resource
		want    want
	}{
		"GatewayNotCreated": {
			reason: "Redis alone being ready is not enough while HTTP is on.",
			want:   want{phase: "Provisioning", ready: fnv1.Ready_READY_FALSE},
		},
		"GatewayUnavailable": {
			reason:  "A gateway Deployment that is not Available keeps the instance provisioning.",
			gateway: observedDeployment(1, 1, "False"),
			want:    want{phase: "Provisioning", ready: fnv1.Ready_READY_FALSE},
		},
		"GatewayStale": {
			reason:  "Available at an older generation (a change rolling out) is not ready.",
			gateway: observedDeployment(2, 1, "True"),
			want:    want{phase: "Provisioning", ready: fnv1.Ready_READY_FALSE},
		},
		"GatewayAvailable": {
			reason:  "Redis ready and the gateway Available: the instance is Ready.",
			gateway: observedDeployment(2, 2, "True"),
			want:    want{phase: "Ready", ready: fnv1.Ready_READY_TRUE},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			observed := observedAuth(testPassword)
			observed["statefulset"] = observedSTS(1, 1, 1)["statefulset"]
			if tc.gateway != nil {
				observed["gateway-deployment"] = tc.gateway
			}
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "http": {"enabled": true}}`), Resources: observed}})
			got := want{
				phase: rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)["phase"].(string),
				ready: rsp.GetDesired().GetResources()["gateway-deployment"].GetReady(),
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionHTTPConnectionDetails(t *testing.T) {
	cases := map[string]struct {
		reason string
		http   string
		want   map[string]string
	}{
		"InCluster": {
			reason: "Without an Ingress apps use the in-cluster URL.",
			http:   `{"enabled": true}`,
			want: map[string]string{
				contract.KeyRESTURL:          "http://cache-http.team-a.svc.cluster.local:8080",
				contract.KeyRESTURLInCluster: "http://cache-http.team-a.svc.cluster.local:8080",
				contract.KeyRESTToken:        contract.Token("default", testPassword),
			},
		},
		"IngressTLS": {
			reason: "With an Ingress and TLS apps outside the cluster use https://<host>.",
			http:   `{"enabled": true, "ingress": {"host": "cache.redis.example.com", "tlsSecretName": "cache-tls"}}`,
			want: map[string]string{
				contract.KeyRESTURL:          "https://cache.redis.example.com",
				contract.KeyRESTURLInCluster: "http://cache-http.team-a.svc.cluster.local:8080",
				contract.KeyRESTToken:        contract.Token("default", testPassword),
			},
		},
		"IngressPlain": {
			reason: "With an Ingress without TLS the URL is http://<host>.",
			http:   `{"enabled": true, "ingress": {"host": "cache.redis.example.com"}}`,
			want: map[string]string{
				contract.KeyRESTURL:          "http://cache.redis.example.com",
				contract.KeyRESTURLInCluster: "http://cache-http.team-a.svc.cluster.local:8080",
				contract.KeyRESTToken:        contract.Token("default", testPassword),
			},
		},
		"Off": {
			reason: "With HTTP off there are no REST keys.",
			http:   `{"enabled": false}`,
			want:   map[string]string{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXR(`{"memory": "256Mi", "http": ` + tc.http + `}`)}})
			got := map[string]string{}
			for _, k := range []string{contract.KeyRESTURL, contract.KeyRESTURLInCluster, contract.KeyRESTToken} {
				if v, ok := rsp.GetDesired().GetComposite().GetConnectionDetails()[k]; ok {
					got[k] = string(v)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want REST connection details, +got:\n%s", tc.reason, diff)
			}
			status := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)["http"].(map[string]any)
			if diff := cmp.Diff(map[string]any{"url": tc.want[contract.KeyRESTURL], "inClusterURL": tc.want[contract.KeyRESTURLInCluster]}, status); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want status.http, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionHTTPOffRemovesGateway(t *testing.T) {
	on := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "podDisruptionBudget": {"enabled": true}, "networkPolicy": {"enabled": true}, "http": {"enabled": true, "replicas": 3, "ingress": {"host": "c.example.com"}}}`)}})
	off := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "podDisruptionBudget": {"enabled": true}, "networkPolicy": {"enabled": true}, "http": {"enabled": false, "replicas": 3, "ingress": {"host": "c.example.com"}}}`)}})
	if diff := cmp.Diff(map[string]string{
		"gateway-deployment":          "Deployment team-a/cache-http",
		"gateway-service":             "Service team-a/cache-http",
		"gateway-ingress":             "Ingress team-a/cache-http",
		"gateway-networkpolicy":       "NetworkPolicy team-a/cache-http",
		"gateway-poddisruptionbudget": "PodDisruptionBudget team-a/cache-http",
	}, gatewayObjects(on)); diff != "" {
		t.Errorf("HTTP on should compose the gateway's objects.\nRunFunction(...): -want, +got:\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{}, gatewayObjects(off)); diff != "" {
		t.Errorf("HTTP off should compose none of the gateway's objects, so Crossplane removes them.\nRunFunction(...): -want, +got:\n%s", diff)
	}
	// Redis's own objects are the same but for the NetworkPolicy, which no
	// longer admits the gateway.
	for _, name := range []string{"statefulset", "configmap", "secret-auth", "service", "service-headless", "poddisruptionbudget"} {
		if diff := cmp.Diff(on.GetDesired().GetResources()[name], off.GetDesired().GetResources()[name], protocmp.Transform()); diff != "" {
			t.Errorf("Turning HTTP off must leave Redis's %s untouched.\n-on, +off:\n%s", name, diff)
		}
	}
}

func gatewayObjects(rsp *fnv1.RunFunctionResponse) map[string]string {
	out := map[string]string{}
	for name, kind := range desiredKinds(rsp) {
		if len(name) > 8 && name[:8] == "gateway-" {
			out[name] = kind
		}
	}
	return out
}

func TestRunFunctionHTTPRejectsBadInput(t *testing.T) {
	const pfx = `invalid RedisHttpInstance "team-a/cache": `
	cases := map[string]struct {
		reason string
		http   string
		want   *fnv1.RunFunctionResponse
	}{
		"Replicas": {
			reason: "Replicas out of range name the field and the range.",
			http:   `{"enabled": true, "replicas": 0}`,
			want:   refused(pfx + `spec.http.replicas: Invalid value: 0: must be from 1 to 10`),
		},
		"Host": {
			reason: "A host that is not a DNS name is refused.",
			http:   `{"enabled": true, "ingress": {"host": "not a host"}}`,
			want:   refused(pfx + `spec.http.ingress.host: Invalid value: "not a host": must be a DNS name such as cache.redis.example.com`),
		},
		"TLSWithoutHost": {
			reason: "TLS without a host has no Ingress to terminate on.",
			http:   `{"enabled": true, "ingress": {"tlsSecretName": "cache-tls"}}`,
			want:   refused(pfx + `spec.http.ingress.tlsSecretName: Invalid value: "cache-tls": needs spec.http.ingress.host: without a host there is no Ingress`),
		},
		"Snippet": {
			reason: "ingress-nginx configuration snippets run in the shared controller: refused.",
			http:   `{"enabled": true, "ingress": {"host": "c.example.com", "annotations": {"nginx.ingress.kubernetes.io/server-snippet": "location / {}"}}}`,
			want:   refused(pfx + `spec.http.ingress.annotations[nginx.ingress.kubernetes.io/server-snippet]: Forbidden: configuration snippets run in the shared ingress controller and are not allowed`),
		},
		"RequestAboveLimit": {
			reason: "A gateway memory request above its limit is refused.",
			http:   `{"enabled": true, "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}`,
			want:   refused(pfx + `spec.http.resources.requests.memory: Invalid value: "1Gi": must not be above spec.http.resources.limits.memory (512Mi)`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "http": ` + tc.http + `}`)}})
			if diff := cmp.Diff(tc.want, rsp, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want rsp, +got rsp:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionHTTPNeedsGatewayImage(t *testing.T) {
	f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword))
	rsp, err := f.RunFunction(context.Background(), &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "http": {"enabled": true}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	want := refused(`invalid RedisHttpInstance "team-a/cache": spec.http.enabled: Forbidden: this platform runs no HTTP gateway (the function has no --gateway-image): ask the platform team, or leave it off`)
	if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
		t.Errorf("Without a gateway image HTTP cannot be composed, and the tenant should hear why.\nRunFunction(...): -want rsp, +got rsp:\n%s", diff)
	}
}
