package fn

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/resource"
)

// observedRedisImage is a StatefulSet observed running image.
func observedRedisImage(image string) map[string]*fnv1.Resource {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]any{"name": "cache-redis", "namespace": "team-a", "generation": 1},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "redis", "image": image},
		}}}},
	})
	return map[string]*fnv1.Resource{"statefulset": {Resource: s}}
}

// desiredPodSpec is the composed StatefulSet's pod template spec.
func desiredStatefulSetSpec(t *testing.T, rsp *fnv1.RunFunctionResponse) map[string]any {
	t.Helper()
	sts := rsp.GetDesired().GetResources()["statefulset"].GetResource().AsMap()
	spec, ok := sts["spec"].(map[string]any)
	if !ok {
		t.Fatalf("no StatefulSet composed: %v", rsp.GetResults())
	}
	return spec
}

func TestRunFunctionRefusesDowngrade(t *testing.T) {
	const pfx = `invalid RedisHttpInstance "team-a/cache": `
	type want struct {
		fatal string
	}
	cases := map[string]struct {
		reason  string
		running string
		spec    string
		want    want
	}{
		"MinorDowngrade": {
			reason:  "Redis 7.0 cannot read the RDB 7.2 wrote: the change must be refused, saying what to do.",
			running: "redis:7.2-alpine",
			spec:    `{"memory": "256Mi", "redisVersion": "7.0"}`,
			want: want{fatal: pfx + `spec.redisVersion: Forbidden: the instance runs Redis 7.2 ("redis:7.2-alpine"), and Redis 7.0 ("redis:7.0-alpine") cannot read the data it wrote: ` +
				`keep 7.2 or later; to move to an older Redis, create a new instance with it and copy the keys with a client (not DUMP/RESTORE, which carry the newer format)`},
		},
		"ImageDowngrade": {
			reason:  "A downgrade through spec.image names spec.image.",
			running: "redis:7.2.4",
			spec:    `{"memory": "256Mi", "image": "mirror.example.com/redis:7.0.15"}`,
			want: want{fatal: pfx + `spec.image: Forbidden: the instance runs Redis 7.2 ("redis:7.2.4"), and Redis 7.0 ("mirror.example.com/redis:7.0.15") cannot read the data it wrote: ` +
				`keep 7.2 or later; to move to an older Redis, create a new instance with it and copy the keys with a client (not DUMP/RESTORE, which carry the newer format)`},
		},
		"Upgrade": {
			reason:  "An upgrade is allowed.",
			running: "redis:7.0-alpine",
			spec:    `{"memory": "256Mi", "redisVersion": "7.2"}`,
		},
		"PatchDowngrade": {
			reason:  "Patch releases share a data format: 7.2.4 to 7.2 is allowed.",
			running: "redis:7.2.4-alpine",
			spec:    `{"memory": "256Mi", "redisVersion": "7.2"}`,
		},
		"RunningUnversioned": {
			reason:  "A running image whose tag names no version cannot be compared, so the change passes.",
			running: "mirror.example.com:5000/redis:latest",
			spec:    `{"memory": "256Mi", "redisVersion": "7.0"}`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec), Resources: observedRedisImage(tc.running)}})
			got := want{}
			for _, r := range rsp.GetResults() {
				if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
					got.fatal = r.GetMessage()
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionGracePeriodFollowsMemory(t *testing.T) {
	cases := map[string]struct {
		reason string
		memory string
		want   float64
	}{
		"Small": {
			reason: "A small instance gets 30 s plus 10 s for its part of a GiB.",
			memory: "256Mi",
			want:   40,
		},
		"FourGi": {
			reason: "A 4Gi instance needs time to write a 3GiB snapshot on SIGTERM: 30 s plus 10 s per GiB.",
			memory: "4Gi",
			want:   70,
		},
		"Decimal": {
			reason: "5G is a little under 4.66GiB: five started GiB.",
			memory: "5G",
			want:   80,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "` + tc.memory + `"}`)}})
			pod := desiredStatefulSetSpec(t, rsp)["template"].(map[string]any)["spec"].(map[string]any)
			if diff := cmp.Diff(tc.want, pod["terminationGracePeriodSeconds"]); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want terminationGracePeriodSeconds, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionRolloutHealsAfterRevert(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi"}`)}})
	got := map[string]any{}
	for _, k := range []string{"podManagementPolicy", "updateStrategy"} {
		got[k] = desiredStatefulSetSpec(t, rsp)[k]
	}
	want := map[string]any{"podManagementPolicy": "Parallel", "updateStrategy": map[string]any{"type": "RollingUpdate"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("A pod that never becomes ready must not block the rollout of a reverted spec (kubernetes#67250): the StatefulSet must use Parallel pod management with rolling updates.\nRunFunction(...): -want, +got:\n%s", diff)
	}
}

func TestRunFunctionPDBAllowsEvictingUnhealthyPod(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "podDisruptionBudget": {"enabled": true}}`)}})
	pdb := rsp.GetDesired().GetResources()["poddisruptionbudget"].GetResource().AsMap()
	got := pdb["spec"].(map[string]any)["unhealthyPodEvictionPolicy"]
	if diff := cmp.Diff("AlwaysAllow", got); diff != "" {
		t.Errorf("A crash-looping Redis pod must not block node drains forever.\nRunFunction(...): -want unhealthyPodEvictionPolicy, +got:\n%s", diff)
	}
}

func TestRunFunctionFailingPodMessageIsUTF8(t *testing.T) {
	for _, msg := range []string{
		"x" + strings.Repeat("é", 400),              // 2-byte runes, cut at an odd byte
		strings.Repeat("€→", 100),                   // 3-byte runes
		"ab" + strings.Repeat("🚫", 100) + "\n\tend", // 4-byte runes and whitespace
	} {
		status := map[string]any{"name": "redis", "state": map[string]any{"waiting": map[string]any{"reason": "ImagePullBackOff", "message": msg}}}
		pod, _ := structpb.NewStruct(map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "cache-redis-0", "namespace": "team-a"},
			"status":   map[string]any{"containerStatuses": []any{status}},
		})
		rsp := run(t, &fnv1.RunFunctionRequest{
			Observed:          &fnv1.State{Composite: claimXR(`{"memory": "256Mi"}`)},
			RequiredResources: map[string]*fnv1.Resources{"redis-pod": {Items: []*fnv1.Resource{{Resource: pod}}}},
		})
		for _, r := range rsp.GetResults() {
			if !utf8.ValidString(r.GetMessage()) || len(r.GetMessage()) > 500 {
				t.Errorf("A failing pod's message must be cut to a bounded line of valid UTF-8, else the response cannot be sent; got %d bytes: %q", len(r.GetMessage()), r.GetMessage())
			}
		}
		if _, err := proto.Marshal(rsp); err != nil {
			t.Errorf("The response for a pod failing with a multi-byte message must marshal: %v", err)
		}
	}
}

func TestRunFunctionAllowedImagePrefixes(t *testing.T) {
	const pfx = `invalid RedisHttpInstance "team-a/cache": `
	cases := map[string]struct {
		reason string
		spec   string
		want   *fnv1.RunFunctionResponse
	}{
		"Allowed": {
			reason: "An image under an allowed registry is composed.",
			spec:   `{"memory": "256Mi", "image": "registry.example.com/redis:7.2"}`,
		},
		"LookalikeRegistry": {
			reason: "A registry whose name merely starts with an allowed one is refused.",
			spec:   `{"memory": "256Mi", "image": "registry.example.com.evil.io/redis:7.2"}`,
			want:   refused(pfx + `spec.image: Forbidden: "registry.example.com.evil.io/redis:7.2" is not under a registry this platform allows (registry.example.com, mirror.example.com/library/); use an image from one of them`),
		},
		"OtherRegistry": {
			reason: "An image from elsewhere is refused, naming spec.image and the allowed registries.",
			spec:   `{"memory": "256Mi", "image": "docker.io/attacker/redis:7.2"}`,
			want:   refused(pfx + `spec.image: Forbidden: "docker.io/attacker/redis:7.2" is not under a registry this platform allows (registry.example.com, mirror.example.com/library/); use an image from one of them`),
		},
		"DefaultImage": {
			reason: "Without spec.image the platform's own default image is used; the restriction is on tenants' images.",
			spec:   `{"memory": "256Mi"}`,
		},
	}
	f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword),
		WithAllowedImagePrefixes("registry.example.com", "mirror.example.com/library/"))
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp, err := f.RunFunction(context.Background(), &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				for _, r := range rsp.GetResults() {
					if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
						t.Errorf("%s\nRunFunction(...): unexpected Fatal: %s", tc.reason, r.GetMessage())
					}
				}
				return
			}
			if diff := cmp.Diff(tc.want, rsp, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want rsp, +got rsp:\n%s", tc.reason, diff)
			}
		})
	}
}

// connectionSecret is a Secret holding the password under the connection
// Secret's key.
func connectionSecretWith(name, namespace, password string) *fnv1.Resource {
	return &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": {"name": "` + name + `", "namespace": "` + namespace + `"},
		"data": {"password": "` + base64.StdEncoding.EncodeToString([]byte(password)) + `"}}`)}
}

// claimXRWithSecret is a claim's XR whose connection Secret Crossplane writes
// to crossplane-system, named after the XR's UID.
func claimXRWithSecret(name string) *fnv1.Resource {
	return &fnv1.Resource{Resource: resource.MustStructJSON(`{
		"apiVersion": "redishttp.io/v1alpha1",
		"kind": "XRedisHttpInstance",
		"metadata": {"name": "cache-x7k2p", "uid": "0b8a7c1e-2f34-4c5d-9e6f-7a8b9c0d1e2f", "labels": {"crossplane.io/claim-name": "cache", "crossplane.io/claim-namespace": "team-a"}},
		"spec": {"memory": "256Mi", "writeConnectionSecretToRef": {"name": "` + name + `", "namespace": "crossplane-system"}}}`)}
}

func TestRunFunctionRestoresDeletedAuthSecret(t *testing.T) {
	const xrUID = "0b8a7c1e-2f34-4c5d-9e6f-7a8b9c0d1e2f"
	kept := "Kept0123456789abcdefghijklmnopqrstuvwxyz"
	type want struct {
		password    string
		requirement bool
	}
	cases := map[string]struct {
		reason string
		req    *fnv1.RunFunctionRequest
		want   want
	}{
		"NamespacedFromConnectionSecret": {
			reason: "With the auth Secret deleted, the password apps hold in the observed connection Secret must be kept, not replaced.",
			req: &fnv1.RunFunctionRequest{Observed: &fnv1.State{
				Composite: namespacedXR(`{"memory": "256Mi"}`),
				Resources: map[string]*fnv1.Resource{"secret-connection": connectionSecretWith("cache-redis", "team-a", kept)},
			}},
			want: want{password: kept},
		},
		"ClaimAsksForConnectionSecret": {
			reason: "In claim mode the function must ask Crossplane for the XR's connection Secret, where the password is kept.",
			req:    &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXRWithSecret(xrUID)}},
			want:   want{password: testPassword, requirement: true},
		},
		"ClaimFromConnectionSecret": {
			reason: "With the auth Secret deleted, the password in the XR's connection Secret (sent as a required resource) must be kept.",
			req: &fnv1.RunFunctionRequest{
				Observed:          &fnv1.State{Composite: claimXRWithSecret(xrUID)},
				RequiredResources: map[string]*fnv1.Resources{"connection-secret": {Items: []*fnv1.Resource{connectionSecretWith(xrUID, "crossplane-system", kept)}}},
			},
			want: want{password: kept, requirement: true},
		},
		"ClaimOtherSecret": {
			reason: "A reference to a Secret not named after the XR's UID is not Crossplane's: the function must not ask for it.",
			req:    &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: claimXRWithSecret("someone-elses-secret")}},
			want:   want{password: testPassword},
		},
		"AuthSecretWins": {
			reason: "While the auth Secret exists its password is the instance's, whatever the connection Secret says.",
			req: &fnv1.RunFunctionRequest{Observed: &fnv1.State{
				Composite: namespacedXR(`{"memory": "256Mi"}`),
				Resources: map[string]*fnv1.Resource{
					"secret-auth":       observedAuth(testPassword)["secret-auth"],
					"secret-connection": connectionSecretWith("cache-redis", "team-a", kept),
				},
			}},
			want: want{password: testPassword},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, tc.req)
			data, _ := rsp.GetDesired().GetResources()["secret-auth"].GetResource().AsMap()["data"].(map[string]any)
			pw, _ := base64.StdEncoding.DecodeString(data["password"].(string))
			sel := rsp.GetRequirements().GetResources()["connection-secret"]
			got := want{password: string(pw), requirement: sel.GetMatchName() == xrUID && sel.GetNamespace() == "crossplane-system" && sel.GetKind() == "Secret"}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
