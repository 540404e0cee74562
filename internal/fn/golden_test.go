package fn

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// goldenResponse compares rsp with the RunFunctionResponse in
// testdata/golden/<name>.yaml, rewriting the file first under -update.
func goldenResponse(t *testing.T, name string, rsp *fnv1.RunFunctionResponse) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".yaml")
	if *updateGolden {
		j, err := protojson.Marshal(rsp)
		if err != nil {
			t.Fatalf("cannot marshal the response: %v", err)
		}
		y, err := yaml.JSONToYAML(j)
		if err != nil {
			t.Fatalf("cannot convert the response to YAML: %v", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, y, 0o600); err != nil {
			t.Fatalf("cannot update %s: %v", path, err)
		}
	}
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("cannot read %s (write it with -update): %v", path, err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("cannot parse %s: %v", path, err)
	}
	want := &fnv1.RunFunctionResponse{}
	if err := protojson.Unmarshal(j, want); err != nil {
		t.Fatalf("cannot parse %s as a RunFunctionResponse: %v", path, err)
	}
	if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
		t.Errorf("RunFunction(...): the response differs from %s (rerun with -update if the change is intended): -want rsp, +got rsp:\n%s", path, diff)
	}
}

// TestRunFunctionGolden pins the whole response, every composed object field
// by field (the pod's probes, env, mounts, resources and security context,
// the Services, Secrets, ConfigMap, policies), the XR's status, results and
// requirements, in process and without tools.
func TestRunFunctionGolden(t *testing.T) {
	ready := observedAuth(testPassword)
	ready["statefulset"] = observedSTS(1, 1, 1)["statefulset"]
	haReady := maps.Clone(ready)
	haReady["statefulset"] = observedSTSReplicas(3)
	httpReady := maps.Clone(ready)
	httpReady["gateway-deployment"] = observedDeployment(2, 2, "True")
	cases := map[string]struct {
		reason string
		req    *fnv1.RunFunctionRequest
	}{
		"claim-defaults": {
			reason: "A claim with only memory set composes the defaults and returns connection details.",
			req:    &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXR(`{"memory": "256Mi"}`)}},
		},
		"namespaced-everything": {
			reason: "A namespaced XR with every option set composes them all, including the connection Secret, NetworkPolicy, PodDisruptionBudget and monitoring (the exporter sidecar, its user, Service and NetworkPolicy).",
			req: &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{
				"memory": "1Gi", "redisVersion": "7.0", "maxmemoryPolicy": "volatile-lfu",
				"cpu": {"request": "250m", "limit": "1"},
				"storage": {"size": "5Gi", "storageClassName": "fast", "reclaimPolicy": "Retain"},
				"persistence": {"rdb": false, "appendOnly": true}, "monitoring": {"enabled": true},
				"config": {"timeout": "300", "notify-keyspace-events": "Ex"},
				"networkPolicy": {"enabled": true, "podSelector": {"app": "web"}},
				"podDisruptionBudget": {"enabled": true},
				"writeConnectionSecretToRef": {"name": "app-redis"}}`)}},
		},
		"namespaced-http": {
			reason: "HTTP on with two replicas, an Ingress with TLS, a NetworkPolicy and a PDB composes the gateway's Deployment, Service, Ingress, NetworkPolicy and PDB, admits the gateway to Redis, and publishes the REST URL and token.",
			req: &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{
				"memory": "256Mi",
				"networkPolicy": {"enabled": true, "podSelector": {"app": "web"}},
				"podDisruptionBudget": {"enabled": true},
				"http": {"enabled": true, "replicas": 2,
					"resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "512Mi"}},
					"ingress": {"host": "cache-team-a.redis.example.com", "className": "nginx", "tlsSecretName": "cache-tls",
						"annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}}}`)}},
		},
		"claim-http-ready": {
			reason: "A claim with HTTP on is Ready once Redis is ready and the gateway Deployment is Available; its connection details carry the in-cluster REST URL and the token.",
			req:    &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXR(`{"memory": "256Mi", "http": {"enabled": true}}`), Resources: httpReady}},
		},
		"namespaced-ha": {
			reason: "Three replicas with HTTP and a NetworkPolicy compose three pods with Sentinel and the coordinator, the replicas and Sentinel Services, the coordinators' ServiceAccount, Role and RoleBinding, a PDB of maxUnavailable 1, a master-only Service, and the Sentinel keys of the connection Secret.",
			req: &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{
				"memory": "256Mi", "replicas": 3,
				"networkPolicy": {"enabled": true, "podSelector": {"app": "web"}},
				"http": {"enabled": true}}`)}},
		},
		"claim-ha-ready": {
			reason: "A claim with three replicas is Ready once its labelled master is ready; status names the master and counts the ready replicas.",
			req: &fnv1.RunFunctionRequest{
				Observed:          &fnv1.State{Composite: claimXR(`{"memory": "256Mi", "replicas": 3}`), Resources: haReady},
				RequiredResources: haPods(map[string]string{"cache-redis-0": "replica", "cache-redis-1": "master", "cache-redis-2": "replica"}),
			},
		},
		"claim-ha-scale-down-waits": {
			reason: "Scaling three replicas down to one while pod 2 is the master keeps three pods and tells the coordinators the wanted count, so the master moves to pod 0 first.",
			req: &fnv1.RunFunctionRequest{
				Observed:          &fnv1.State{Composite: claimXR(`{"memory": "256Mi", "replicas": 1}`), Resources: haReady},
				RequiredResources: haPods(map[string]string{"cache-redis-0": "replica", "cache-redis-1": "replica", "cache-redis-2": "master"}),
			},
		},
		"claim-ready": {
			reason: "A later reconcile with the auth Secret and a ready StatefulSet observed reuses the password and reports Ready.",
			req:    &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXR(`{"memory": "256Mi"}`), Resources: ready}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Log(tc.reason)
			goldenResponse(t, name, run(t, tc.req))
		})
	}
}
