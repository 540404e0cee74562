package fn

import (
	"context"
	"encoding/base64"
	"maps"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/response"
)

const testPassword = "Pw0123456789abcdefghijklmnopqrstuvwxyzAB"

// testGatewayImage is the platform's gateway image in tests.
const (
	testGatewayImage     = "registry.example.com/gateway-redishttp:v0.1.0"
	testCoordinatorImage = "registry.example.com/coordinator-redishttp:v0.1.0"
)

// passwordKey is the auth Secret's password key under the name composePod
// (redis_test.go) uses; composePod moves to the shared pod runner.
const passwordKey = contract.AuthPasswordKey

// claimXR is a legacy XR as Crossplane creates it for claim team-a/cache.
func claimXR(spec string) *fnv1.Resource {
	return &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "redishttp.io/v1alpha1",
		"kind": "XRedisHttpInstance",
		"metadata": {"name": "cache-x7k2p", "labels": {"crossplane.io/claim-name": "cache", "crossplane.io/claim-namespace": "team-a"}},
		"spec": ` + spec + `}`)}
}

// namespacedXR is the tenant's RedisHttpInstance as a v2 namespaced XR.
func namespacedXR(spec string) *fnv1.Resource {
	return &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "redishttp.io/v1alpha1",
		"kind": "RedisHttpInstance",
		"metadata": {"name": "cache", "namespace": "team-a"},
		"spec": ` + spec + `}`)}
}

func run(t testing.TB, req *fnv1.RunFunctionRequest) *fnv1.RunFunctionResponse {
	t.Helper()
	f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(func() (string, error) { return testPassword, nil }),
		WithGatewayImage(testGatewayImage), WithCoordinatorImage(testCoordinatorImage))
	rsp, err := f.RunFunction(context.Background(), req)
	if err != nil {
		t.Fatalf("RunFunction(...): unexpected gRPC error: %v", err)
	}
	return rsp
}

// refused is the whole response for a spec a tenant has to fix, before
// anything was composed: a Warning event and Valid=False on the claim and the
// XR, and the XR's PHASE Invalid, not ready.
func refused(msg string) *fnv1.RunFunctionResponse {
	tgt := fnv1.Target_TARGET_COMPOSITE_AND_CLAIM
	return &fnv1.RunFunctionResponse{
		Meta: &fnv1.ResponseMeta{Ttl: durationpb.New(response.DefaultTTL)},
		Results: []*fnv1.Result{
			{Severity: fnv1.Severity_SEVERITY_WARNING, Message: msg, Reason: new(reasonInvalidSpec), Target: &tgt},
		},
		Conditions: []*fnv1.Condition{{
			Type: conditionValid, Status: fnv1.Status_STATUS_CONDITION_FALSE, Reason: reasonInvalidSpec,
			Message: &msg, Target: &tgt,
		}},
		Desired: &fnv1.State{Composite: &fnv1.Resource{
			Resource: resource.MustStructJSON(`{"status": {"phase": "Invalid"}}`),
			Ready:    fnv1.Ready_READY_FALSE,
		}},
	}
}

// fatal is the whole response for a spec a tenant has to fix when something
// runs and no accepted spec is known: the refusal, then a Fatal result, so
// that Crossplane changes nothing.
func fatal(msg string) *fnv1.RunFunctionResponse {
	rsp := refused(msg)
	rsp.Desired = nil
	rsp.Results = append(rsp.Results, &fnv1.Result{Severity: fnv1.Severity_SEVERITY_FATAL, Message: msg, Target: fnv1.Target_TARGET_COMPOSITE.Enum()})
	return rsp
}

func TestRunFunctionRejectsBadInput(t *testing.T) {
	const pfx = `invalid RedisHttpInstance "team-a/cache": `
	type want struct {
		rsp *fnv1.RunFunctionResponse
	}
	cases := map[string]struct {
		reason string
		xr     *fnv1.Resource
		want   want
	}{
		"MissingMemory": {
			reason: "A spec without memory should name the required field.",
			xr:     namespacedXR(`{}`),
			want:   want{rsp: refused(pfx + "spec.memory: Required value: the memory for Redis, for example 256Mi")},
		},
		"UnparseableMemory": {
			reason: "A memory that is not a Kubernetes quantity should say what a quantity looks like.",
			xr:     namespacedXR(`{"memory": "lots"}`),
			want:   want{rsp: refused(pfx + `spec.memory: Invalid value: "lots": must be a Kubernetes quantity such as 256Mi, 1Gi or 500m`)},
		},
		"MemoryTooSmall": {
			reason: "Memory below 32Mi should be refused with the minimum.",
			xr:     namespacedXR(`{"memory": "16Mi"}`),
			want:   want{rsp: refused(pfx + `spec.memory: Invalid value: "16Mi": must be at least 32Mi`)},
		},
		"MemoryWrongType": {
			reason: "A memory of the wrong JSON type should name the field and the type expected.",
			xr:     namespacedXR(`{"memory": true}`),
			want:   want{rsp: refused(pfx + `spec.memory: Invalid value: true: must be a Kubernetes quantity such as 256Mi`)},
		},
		"PolicyWrongType": {
			reason: "A field of the wrong JSON type should name the field and the type expected.",
			xr:     namespacedXR(`{"memory": "256Mi", "maxmemoryPolicy": 3}`),
			want:   want{rsp: refused(pfx + `spec.maxmemoryPolicy: Invalid value: "a JSON number": must be a string`)},
		},
		"ReplicasBeyondInt32": {
			reason: "A count that does not fit its field must be refused, not wrapped around to a valid one (4294967297 would be 1).",
			xr:     namespacedXR(`{"memory": "256Mi", "http": {"enabled": true, "replicas": 4294967297}}`),
			want:   want{rsp: refused(pfx + `spec.http.replicas: Invalid value: "4294967297": must be a whole number from -2147483648 to 2147483647`)},
		},
		"FractionalReplicas": {
			reason: "A count must be whole.",
			xr:     namespacedXR(`{"memory": "256Mi", "http": {"enabled": true, "replicas": 2.5}}`),
			want:   want{rsp: refused(pfx + `spec.http.replicas: Invalid value: "2.5": must be a whole number from -2147483648 to 2147483647`)},
		},
		"SectionWrongType": {
			reason: "A section that is not an object should name the section and say it must be one.",
			xr:     namespacedXR(`{"memory": "256Mi", "persistence": "yes"}`),
			want:   want{rsp: refused(pfx + `spec.persistence: Invalid value: "a JSON string": must be an object`)},
		},
		"NestedWrongType": {
			reason: "A nested field of the wrong JSON type should be named by its whole path.",
			xr:     namespacedXR(`{"memory": "256Mi", "persistence": {"rdb": "yes"}}`),
			want:   want{rsp: refused(pfx + `spec.persistence.rdb: Invalid value: "a JSON string": must be true or false`)},
		},
		"UnknownPolicy": {
			reason: "An eviction policy Redis does not have should list the ones it has.",
			xr:     namespacedXR(`{"memory": "256Mi", "maxmemoryPolicy": "lru"}`),
			want:   want{rsp: refused(pfx + `spec.maxmemoryPolicy: Unsupported value: "lru": supported values: "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "noeviction"`)},
		},
		"CPURequestAboveLimit": {
			reason: "A cpu request above the limit can never be scheduled as asked.",
			xr:     namespacedXR(`{"memory": "256Mi", "cpu": {"request": "2", "limit": "1"}}`),
			want:   want{rsp: refused(pfx + `spec.cpu.request: Invalid value: "2": must not be above spec.cpu.limit (1)`)},
		},
		"ConfigNewline": {
			reason: "A config value with a newline could inject directives and must be refused.",
			xr:     namespacedXR(`{"memory": "256Mi", "config": {"timeout": "0\nrequirepass x"}}`),
			want:   want{rsp: refused(pfx + `spec.config[timeout]: Invalid value: "0\nrequirepass x": must be one line: a newline would let one directive write others`)},
		},
		"ConfigManagedDirective": {
			reason: "A directive redishttp manages should say it is managed, not merely unknown.",
			xr:     namespacedXR(`{"memory": "256Mi", "config": {"requirepass": "x"}}`),
			want:   want{rsp: refused(pfx + `spec.config[requirepass]: Forbidden: "requirepass" is managed by redishttp from the instance's spec and cannot be set in spec.config`)},
		},
		"ConfigBadValue": {
			reason: "An allow-listed directive with an out-of-range value should give the range.",
			xr:     namespacedXR(`{"memory": "256Mi", "config": {"hz": "1000"}}`),
			want:   want{rsp: refused(pfx + `spec.config[hz]: Invalid value: "1000": must be a whole number from 1 to 500`)},
		},
		"SeveralMistakes": {
			reason: "Every mistake should be reported at once, in a stable order.",
			xr:     namespacedXR(`{"memory": "1Ki", "storage": {"reclaimPolicy": "Keep"}}`),
			want: want{rsp: refused(pfx + `spec.memory: Invalid value: "1Ki": must be at least 32Mi; ` +
				`spec.storage.reclaimPolicy: Unsupported value: "Keep": supported values: "Delete", "Retain"`)},
		},
		"ConnectionSecretIsAuthSecret": {
			reason: "The tenant's connection Secret must not take the name of the Secret holding Redis's own password.",
			xr:     namespacedXR(`{"memory": "256Mi", "writeConnectionSecretToRef": {"name": "cache-redis-auth"}}`),
			want:   want{rsp: refused(pfx + `spec.writeConnectionSecretToRef.name: Invalid value: "cache-redis-auth": is the Secret that holds the instance's own password; choose another name`)},
		},
		"NameNotAServiceName": {
			reason: "A claim name that is valid for a claim but not for a Service should say what a valid name looks like.",
			xr: &fnv1.Resource{Resource: resource.MustStructJSON(`{"apiVersion": "redishttp.io/v1alpha1", "kind": "XRedisHttpInstance",
				"metadata": {"name": "x-1", "labels": {"crossplane.io/claim-name": "1cache", "crossplane.io/claim-namespace": "team-a"}}, "spec": {"memory": "256Mi"}}`)},
			want: want{rsp: refused(`instance name "1cache" cannot name its Service "1cache-redis": use lowercase letters, digits and '-', starting with a letter`)},
		},
		"RedisTooOld": {
			reason: "Redis 6 lacks what the function and ApiKeys rely on, so it should be refused up front instead of crash-looping.",
			xr:     namespacedXR(`{"memory": "256Mi", "redisVersion": "6.2"}`),
			want:   want{rsp: refused(pfx + `spec.redisVersion: Invalid value: "6.2": must be 7.0 or later`)},
		},
		"LegacyXRWithoutClaim": {
			reason: "A cluster-scoped XR created without a claim has no tenant namespace to compose into.",
			xr: &fnv1.Resource{Resource: resource.MustStructJSON(`{"apiVersion": "redishttp.io/v1alpha1", "kind": "XRedisHttpInstance",
				"metadata": {"name": "orphan"}, "spec": {"memory": "256Mi"}}`)},
			want: want{rsp: refused(`XRedisHttpInstance "orphan" has no claim: create a RedisHttpInstance in your namespace instead of the cluster-scoped XRedisHttpInstance`)},
		},
		"NameTooLong": {
			reason: "An instance name too long for its StatefulSet's labels should say how long it may be.",
			xr: &fnv1.Resource{Resource: resource.MustStructJSON(`{"apiVersion": "redishttp.io/v1alpha1", "kind": "RedisHttpInstance",
				"metadata": {"name": "a-very-long-instance-name-that-goes-on-and-on-xy", "namespace": "team-a"}, "spec": {"memory": "256Mi"}}`)},
			want: want{rsp: refused(`instance name "a-very-long-instance-name-that-goes-on-and-on-xy" is too long: 48 characters, at most 46 fit in the names and labels of its StatefulSet and Services`)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: tc.xr}})
			if diff := cmp.Diff(tc.want.rsp, rsp, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want rsp, +got rsp:\n%s", tc.reason, diff)
			}
		})
	}
}

// desiredKinds returns each desired composed resource's kind/namespace/name.
func desiredKinds(rsp *fnv1.RunFunctionResponse) map[string]string {
	out := map[string]string{}
	for name, r := range rsp.GetDesired().GetResources() {
		m := r.GetResource().AsMap()
		md, _ := m["metadata"].(map[string]any)
		out[name] = m["kind"].(string) + " " + md["namespace"].(string) + "/" + md["name"].(string)
	}
	return out
}

func TestRunFunctionComposesInTenantNamespace(t *testing.T) {
	type want struct {
		objects map[string]string
		details map[string][]byte
	}
	details := map[string][]byte{
		"endpoint": []byte("cache-redis.team-a.svc.cluster.local"),
		"port":     []byte("6379"),
		"username": []byte("default"),
		"password": []byte(testPassword),
		"url":      []byte("redis://default:" + testPassword + "@cache-redis.team-a.svc.cluster.local:6379/0"),
	}
	base := map[string]string{
		"statefulset":      "StatefulSet team-a/cache-redis",
		"service":          "Service team-a/cache-redis",
		"service-headless": "Service team-a/cache-redis-headless",
		"configmap":        "ConfigMap team-a/cache-redis-config",
		"secret-auth":      "Secret team-a/cache-redis-auth",
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		maps.Copy(out, base)
		maps.Copy(out, extra)
		return out
	}
	cases := map[string]struct {
		reason string
		xr     *fnv1.Resource
		want   want
	}{
		"ClaimMode": {
			reason: "A claim's XR should compose into the claim's namespace and return connection details for the claim's Secret, composing no connection Secret of its own.",
			xr:     claimXR(`{"memory": "256Mi"}`),
			want:   want{objects: base, details: details},
		},
		"NamespacedMode": {
			reason: "A namespaced XR should compose into its namespace, including the connection Secret at its default name, and return no connection details.",
			xr:     namespacedXR(`{"memory": "256Mi"}`),
			want:   want{objects: with(map[string]string{"secret-connection": "Secret team-a/cache-redis"})},
		},
		"NamespacedModeNamedSecret": {
			reason: "The connection Secret should take the name the tenant asked for.",
			xr:     namespacedXR(`{"memory": "256Mi", "writeConnectionSecretToRef": {"name": "app-redis"}}`),
			want:   want{objects: with(map[string]string{"secret-connection": "Secret team-a/app-redis"})},
		},
		"PolicyObjectsWhenAsked": {
			reason: "A NetworkPolicy and a PodDisruptionBudget should be composed only when the tenant enables them.",
			xr:     namespacedXR(`{"memory": "256Mi", "networkPolicy": {"enabled": true}, "podDisruptionBudget": {"enabled": true}}`),
			want: want{objects: with(map[string]string{
				"secret-connection":   "Secret team-a/cache-redis",
				"networkpolicy":       "NetworkPolicy team-a/cache-redis",
				"poddisruptionbudget": "PodDisruptionBudget team-a/cache-redis",
			})},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: tc.xr}})
			if diff := cmp.Diff(tc.want.objects, desiredKinds(rsp)); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want objects, +got objects:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.details, rsp.GetDesired().GetComposite().GetConnectionDetails(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want connection details, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionConnectionSecretNamespaced(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi"}`)}})
	got := rsp.GetDesired().GetResources()["secret-connection"].GetResource().AsMap()["data"]
	enc := func(s string) any { return base64.StdEncoding.EncodeToString([]byte(s)) }
	want := map[string]any{
		"endpoint": enc("cache-redis.team-a.svc.cluster.local"),
		"port":     enc("6379"),
		"username": enc("default"),
		"password": enc(testPassword),
		"url":      enc("redis://default:" + testPassword + "@cache-redis.team-a.svc.cluster.local:6379/0"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("The namespaced connection Secret should hold what apps need to connect.\nRunFunction(...): -want data, +got data:\n%s", diff)
	}
}

// observedAuth is the auth Secret as Crossplane observes it after a first run.
func observedAuth(password string) map[string]*fnv1.Resource {
	return map[string]*fnv1.Resource{"secret-auth": {Resource: resource.MustStructJSON(`{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": {"name": "cache-redis-auth", "namespace": "team-a"},
		"data": {"password": "` + base64.StdEncoding.EncodeToString([]byte(password)) + `"}}`)}}
}

func TestRunFunctionKeepsPassword(t *testing.T) {
	kept := "Kept0123456789abcdefghijklmnopqrstuvwxyz"
	cases := map[string]struct {
		reason   string
		observed map[string]*fnv1.Resource
		want     string
	}{
		"FirstRunGenerates": {
			reason: "With no observed Secret the function should generate a password.",
			want:   testPassword,
		},
		"LaterRunsReuse": {
			reason:   "With an observed Secret the function should reuse its password, so it never changes under apps.",
			observed: observedAuth(kept),
			want:     kept,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXR(`{"memory": "256Mi"}`), Resources: tc.observed}})
			got := string(rsp.GetDesired().GetComposite().GetConnectionDetails()["password"])
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want password, +got password:\n%s", tc.reason, diff)
			}
			data := rsp.GetDesired().GetResources()["secret-auth"].GetResource().AsMap()["data"].(map[string]any)
			if diff := cmp.Diff(base64.StdEncoding.EncodeToString([]byte(tc.want)), data["password"]); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want auth Secret password, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionRefusesUnusableObservedPassword(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{
		Composite: claimXR(`{"memory": "256Mi"}`), Resources: observedAuth("short pw"),
	}})
	want := fatal(`the password in Secret "cache-redis-auth" is not usable in redis.conf (it must be at least 32 letters and digits); delete the Secret's "password" key to generate a new one`)
	if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
		t.Errorf("An edited password that redis.conf cannot hold should stop composition rather than silently replace it.\nRunFunction(...): -want rsp, +got rsp:\n%s", diff)
	}
}

func observedSTS(generation, observedGeneration, ready int) map[string]*fnv1.Resource {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]any{"name": "cache-redis", "namespace": "team-a", "generation": generation},
		"status":   map[string]any{"observedGeneration": observedGeneration, "readyReplicas": ready, "updatedReplicas": ready},
	})
	return map[string]*fnv1.Resource{"statefulset": {Resource: s}}
}

func TestRunFunctionReadiness(t *testing.T) {
	type want struct {
		ready fnv1.Ready
		phase string
	}
	cases := map[string]struct {
		reason   string
		observed map[string]*fnv1.Resource
		want     want
	}{
		"NotCreatedYet": {
			reason: "Before the StatefulSet exists the instance is provisioning.",
			want:   want{ready: fnv1.Ready_READY_FALSE, phase: "Provisioning"},
		},
		"PodNotReady": {
			reason:   "A StatefulSet whose pod has not passed the authenticating probe is not ready.",
			observed: observedSTS(1, 1, 0),
			want:     want{ready: fnv1.Ready_READY_FALSE, phase: "Provisioning"},
		},
		"StaleStatus": {
			reason:   "A ready replica counted for an older generation (a change still rolling out) is not ready.",
			observed: observedSTS(2, 1, 1),
			want:     want{ready: fnv1.Ready_READY_FALSE, phase: "Provisioning"},
		},
		"Ready": {
			reason:   "A StatefulSet with a ready replica at its current generation is ready.",
			observed: observedSTS(3, 3, 1),
			want:     want{ready: fnv1.Ready_READY_TRUE, phase: "Ready"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXR(`{"memory": "256Mi"}`), Resources: tc.observed}})
			got := want{
				ready: rsp.GetDesired().GetResources()["statefulset"].GetReady(),
				phase: rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)["phase"].(string),
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func requiredPod(waitingReason, lastTerminated string) map[string]*fnv1.Resources {
	status := map[string]any{"name": "redis", "ready": false}
	if waitingReason != "" {
		status["state"] = map[string]any{"waiting": map[string]any{"reason": waitingReason, "message": "Back-off pulling image \"redis:9.9-alpine\""}}
	}
	if lastTerminated != "" {
		status["lastState"] = map[string]any{"terminated": map[string]any{"reason": lastTerminated}}
	}
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "cache-redis-0", "namespace": "team-a"},
		"status":   map[string]any{"containerStatuses": []any{status}},
	})
	return map[string]*fnv1.Resources{"redis-pod": {Items: []*fnv1.Resource{{Resource: s}}}}
}

func TestRunFunctionReportsFailingPod(t *testing.T) {
	type want struct {
		phase    string
		warnings []string
	}
	cases := map[string]struct {
		reason   string
		required map[string]*fnv1.Resources
		want     want
	}{
		"NoPodYet": {
			reason: "Without a pod the instance is provisioning and nothing is reported.",
			want:   want{phase: "Provisioning"},
		},
		"Starting": {
			reason:   "A pod whose container is still being created is provisioning, not failing.",
			required: requiredPod("ContainerCreating", ""),
			want:     want{phase: "Provisioning"},
		},
		"ImagePull": {
			reason:   "An image that cannot be pulled will not fix itself: the tenant should see Failed and why.",
			required: requiredPod("ImagePullBackOff", ""),
			want: want{phase: "Failed", warnings: []string{
				`Redis pod team-a/cache-redis-0 is failing: container "redis" is ImagePullBackOff: Back-off pulling image "redis:9.9-alpine"`,
			}},
		},
		"OOMKilled": {
			reason:   "A crash loop after an OOM kill should tell the tenant to raise spec.memory.",
			required: requiredPod("CrashLoopBackOff", "OOMKilled"),
			want: want{phase: "Failed", warnings: []string{
				`Redis pod team-a/cache-redis-0 is failing: container "redis" is CrashLoopBackOff after being OOMKilled: raise spec.memory: Back-off pulling image "redis:9.9-alpine"`,
			}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{
				Observed:          &fnv1.State{Composite: claimXR(`{"memory": "256Mi"}`)},
				RequiredResources: tc.required,
			})
			got := want{phase: rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)["phase"].(string)}
			for _, r := range rsp.GetResults() {
				if r.GetSeverity() == fnv1.Severity_SEVERITY_WARNING {
					got.warnings = append(got.warnings, r.GetMessage())
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
			sel := rsp.GetRequirements().GetResources()["redis-pod"]
			if sel.GetKind() != "Pod" || !cmp.Equal(sel.GetMatchLabels().GetLabels(), map[string]string{"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "cache"}) || sel.GetNamespace() != "team-a" {
				t.Errorf("%s\nRunFunction(...): should require the Redis pods of team-a/cache, got %v", tc.reason, sel)
			}
		})
	}
}

func TestRunFunctionNetworkPolicyAdmitsProvider(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "networkPolicy": {"enabled": true, "podSelector": {"app": "web"}}}`)}})
	np := rsp.GetDesired().GetResources()["networkpolicy"].GetResource().AsMap()
	got := np["spec"].(map[string]any)["ingress"].([]any)[0].(map[string]any)["from"]
	want := []any{
		map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": "web"}}},
		map[string]any{
			"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "crossplane-system"}},
			"podSelector":       map[string]any{"matchLabels": map[string]any{"pkg.crossplane.io/provider": "provider-redishttp"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("The NetworkPolicy should admit the tenant's selected pods and the ApiKey provider, which manages the instance's ACL users.\nRunFunction(...): -want from, +got from:\n%s", diff)
	}
}

func TestRunFunctionKeepsVolumeTemplate(t *testing.T) {
	observed := observedSTS(1, 1, 1)
	sts := observed["statefulset"].GetResource().AsMap()
	sts["spec"] = map[string]any{"volumeClaimTemplates": []any{map[string]any{
		"metadata": map[string]any{"name": "data"},
		"spec": map[string]any{
			"accessModes":      []any{"ReadWriteOnce"},
			"storageClassName": "standard",
			"volumeMode":       "Filesystem",
			"resources":        map[string]any{"requests": map[string]any{"storage": "1Gi"}},
		},
		"status": map[string]any{"phase": "Pending"},
	}}}
	observed["statefulset"].Resource, _ = structpb.NewStruct(sts)

	type want struct {
		size     any
		warnings []string
	}
	cases := map[string]struct {
		reason string
		spec   string
		want   want
	}{
		"Unchanged": {
			reason: "The same storage spec (the class defaulted by the cluster) applies the volume template as it is, without a warning.",
			spec:   `{"memory": "256Mi", "storage": {"size": "1Gi"}}`,
			want:   want{size: "1Gi"},
		},
		"Grown": {
			reason: "A bigger size cannot be applied to a StatefulSet's volume template: keep the existing one, so other changes still apply, and tell the tenant how to grow the volume.",
			spec:   `{"memory": "512Mi", "storage": {"size": "5Gi"}}`,
			want: want{size: "1Gi", warnings: []string{`spec.storage changes do not apply to the existing volume (size 1Gi, class "standard"): ` +
				`Kubernetes cannot change a StatefulSet's volume template. To grow it, resize PersistentVolumeClaim data-cache-redis-0 directly if its storage class allows expansion`}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec), Resources: observed}})
			d := rsp.GetDesired().GetResources()["statefulset"].GetResource().AsMap()
			vct := d["spec"].(map[string]any)["volumeClaimTemplates"].([]any)[0].(map[string]any)
			got := want{size: vct["spec"].(map[string]any)["resources"].(map[string]any)["requests"].(map[string]any)["storage"]}
			for _, r := range rsp.GetResults() {
				if r.GetSeverity() == fnv1.Severity_SEVERITY_WARNING {
					got.warnings = append(got.warnings, r.GetMessage())
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
			if _, ok := vct["status"]; ok {
				t.Errorf("%s\nRunFunction(...): the kept volume template should not carry the observed status", tc.reason)
			}
		})
	}
}

func TestRandomPasswordIsReusable(t *testing.T) {
	a, err := RandomPassword()
	if err != nil {
		t.Fatalf("RandomPassword(): %v", err)
	}
	b, _ := RandomPassword()
	if !safePassword(a) || a == b {
		t.Errorf("A generated password should be one the function accepts back from the observed Secret (letters and digits, 32 to 512 long), and new each time; got %q and %q", a, b)
	}
}
