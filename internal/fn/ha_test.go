package fn

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
)

// haPods are the instance's pods as Crossplane sends them for the function's
// requirement: name -> role label ("" for none), all ready.
func haPods(roles map[string]string) map[string]*fnv1.Resources {
	items := []*fnv1.Resource{}
	for name, role := range roles {
		lbl := map[string]any{contract.LabelName: contract.NameRedis, contract.LabelInstance: "cache"}
		if role != "" {
			lbl[contract.LabelRole] = role
		}
		s, _ := structpb.NewStruct(map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": name, "namespace": "team-a", "labels": lbl},
			"status":   map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}},
		})
		items = append(items, &fnv1.Resource{Resource: s})
	}
	return map[string]*fnv1.Resources{requirementPod: {Items: items}}
}

// observedSTSReplicas is a ready StatefulSet of n pods.
func observedSTSReplicas(n int) *fnv1.Resource {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]any{"name": "cache-redis", "namespace": "team-a", "generation": 1},
		"spec":     map[string]any{"replicas": n},
		"status":   map[string]any{"observedGeneration": 1, "readyReplicas": n, "updatedReplicas": n},
	})
	return &fnv1.Resource{Resource: s}
}

func TestReplicasValidation(t *testing.T) {
	cases := map[string]struct {
		reason string
		spec   string
		want   *fnv1.RunFunctionResponse
	}{
		"Two": {
			reason: "Two pods survive no more failures than one: refused, naming the field and what is accepted.",
			spec:   `{"memory": "256Mi", "replicas": 2}`,
			want:   refused(`invalid RedisHttpInstance "team-a/cache": spec.replicas: Invalid value: 2: must be 1, 3 or 5: one Redis, or a master and replicas with Sentinel, which needs an odd number of pods to keep a majority (2 survives no more failures than 1, 4 no more than 3)`),
		},
		"Four": {
			reason: "Four is refused like two.",
			spec:   `{"memory": "256Mi", "replicas": 4}`,
			want:   refused(`invalid RedisHttpInstance "team-a/cache": spec.replicas: Invalid value: 4: must be 1, 3 or 5: one Redis, or a master and replicas with Sentinel, which needs an odd number of pods to keep a majority (2 survives no more failures than 1, 4 no more than 3)`),
		},
		"Seven": {
			reason: "More than five is refused.",
			spec:   `{"memory": "256Mi", "replicas": 7}`,
			want:   refused(`invalid RedisHttpInstance "team-a/cache": spec.replicas: Invalid value: 7: must be 1, 3 or 5: one Redis, or a master and replicas with Sentinel, which needs an odd number of pods to keep a majority (2 survives no more failures than 1, 4 no more than 3)`),
		},
		"NotANumber": {
			reason: "A string where a number belongs names the field.",
			spec:   `{"memory": "256Mi", "replicas": "three"}`,
			want:   refused(`invalid RedisHttpInstance "team-a/cache": spec.replicas: Invalid value: "a JSON string": must be a number`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}})
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestReplicasNeedCoordinatorImage(t *testing.T) {
	f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword))
	rsp, err := f.RunFunction(t.Context(), &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "replicas": 3}`)}})
	if err != nil {
		t.Fatal(err)
	}
	want := refused(`invalid RedisHttpInstance "team-a/cache": spec.replicas: Forbidden: this platform runs no replicas (the function has no --coordinator-image): ask the platform team, or use 1`)
	if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
		t.Errorf("A platform without a coordinator image should refuse replicas.\nRunFunction(...): -want, +got:\n%s", diff)
	}
}

func TestRolesOf(t *testing.T) {
	podsOf := func(roles map[string]string) []resource.Required {
		return pods(&fnv1.RunFunctionRequest{RequiredResources: haPods(roles)})
	}
	cases := map[string]struct {
		reason string
		pods   []resource.Required
		want   roles
	}{
		"OneMaster": {
			reason: "The pod labelled master is the master; ready replicas are counted.",
			pods:   podsOf(map[string]string{"cache-redis-0": "replica", "cache-redis-1": "master", "cache-redis-2": "replica"}),
			want:   roles{Master: "cache-redis-1", MasterReady: true, ReadyReplicas: 2},
		},
		"TwoMasters": {
			reason: "Two pods labelled master (a moment of a failover) name no master.",
			pods:   podsOf(map[string]string{"cache-redis-0": "master", "cache-redis-1": "master", "cache-redis-2": "replica"}),
			want:   roles{ReadyReplicas: 1},
		},
		"Unlabelled": {
			reason: "Pods without a role label (starting, held) are neither.",
			pods:   podsOf(map[string]string{"cache-redis-0": "", "cache-redis-1": "replica"}),
			want:   roles{ReadyReplicas: 1},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, rolesOf(tc.pods)); diff != "" {
				t.Errorf("%s\nrolesOf(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestHoldScaleDown(t *testing.T) {
	in := &instance{Name: "cache", Namespace: "team-a"}
	observed := func(n int) map[resource.Name]resource.ObservedComposed {
		oc, _ := request.GetObservedComposedResources(&fnv1.RunFunctionRequest{Observed: &fnv1.State{Resources: map[string]*fnv1.Resource{"statefulset": observedSTSReplicas(n)}}})
		return oc
	}
	type want struct {
		replicas, wantReplicas int32
		holds                  bool
	}
	cases := map[string]struct {
		reason   string
		replicas int32
		have     int
		master   string
		want     want
	}{
		"MasterStays": {
			reason:   "Scaling 3 -> 1 with pod 0 the master scales down at once.",
			replicas: 1, have: 3, master: "cache-redis-0",
			want: want{replicas: 1, wantReplicas: 1},
		},
		"MasterGoes": {
			reason:   "Scaling 3 -> 1 with pod 2 the master keeps 3 pods until the master moves.",
			replicas: 1, have: 3, master: "cache-redis-2",
			want: want{replicas: 3, wantReplicas: 1, holds: true},
		},
		"MasterUnknown": {
			reason:   "Without a known master (a failover, or pods not sent yet) a scale-down waits.",
			replicas: 3, have: 5,
			want: want{replicas: 5, wantReplicas: 3, holds: true},
		},
		"ScaleUp": {
			reason:   "Scaling up never waits.",
			replicas: 5, have: 3, master: "cache-redis-2",
			want: want{replicas: 5, wantReplicas: 5},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := &params{Replicas: tc.replicas, WantReplicas: tc.replicas}
			msg := holdScaleDown(p, in, observed(tc.have), roles{Master: tc.master})
			got := want{replicas: p.Replicas, wantReplicas: p.WantReplicas, holds: msg != ""}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nholdScaleDown(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestReplicasChangeWithoutPersistence: a change between one pod and
// several restarts every pod, and a Redis without persistence restarts
// empty: refused, saying what to do, while the instance keeps no data on
// disk; allowed with persistence, and between 3 and 5 pods (the replicas
// keep the data).
func TestReplicasChangeWithoutPersistence(t *testing.T) {
	const noPersistence = `"persistence": {"rdb": false, "appendOnly": false}`
	cases := map[string]struct {
		reason string
		spec   string
		have   int
		want   string
	}{
		"ThreeToOne": {
			reason: "3 -> 1 without persistence would restart the last pod empty: refused, saying to switch RDB on first.",
			spec:   `{"memory": "256Mi", "replicas": 1, ` + noPersistence + `}`, have: 3,
			want: `invalid RedisHttpInstance "team-a/cache": spec.replicas: Forbidden: cannot change from 3 pods to 1 while spec.persistence keeps no data on disk (rdb and appendOnly both false): the change restarts every pod, and a Redis without persistence restarts empty. Switch spec.persistence.rdb on first (a rolling change: the replicas keep the data), then change spec.replicas`,
		},
		"OneToThree": {
			reason: "1 -> 3 without persistence would restart the only pod empty: refused.",
			spec:   `{"memory": "256Mi", "replicas": 3, ` + noPersistence + `}`, have: 1,
			want: `invalid RedisHttpInstance "team-a/cache": spec.replicas: Forbidden: cannot change from 1 pods to 3 while spec.persistence keeps no data on disk (rdb and appendOnly both false): the change restarts every pod, and a Redis without persistence restarts empty. No change keeps the keys of a single Redis without persistence: create a new instance with the replicas you want and copy the keys to it`,
		},
		"ThreeToOneWithRDB": {
			reason: "With RDB the last pod saves on its way down and loads on its way up: allowed.",
			spec:   `{"memory": "256Mi", "replicas": 1}`, have: 3,
		},
		"ThreeToFive": {
			reason: "3 -> 5 without persistence rolls with replicas keeping the data: allowed.",
			spec:   `{"memory": "256Mi", "replicas": 5, ` + noPersistence + `}`, have: 3,
		},
		"NewInstance": {
			reason: "An instance without a StatefulSet yet has nothing to lose.",
			spec:   `{"memory": "256Mi", "replicas": 3, ` + noPersistence + `}`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}}
			if tc.have > 0 {
				req.Observed.Resources = map[string]*fnv1.Resource{string(nameStatefulSet): observedSTSReplicas(tc.have)}
			}
			var got string
			for _, r := range run(t, req).GetResults() {
				if strings.Contains(r.GetMessage(), "spec.replicas: Forbidden") {
					got = r.GetMessage()
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nRunFunction(...) result about spec.replicas: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
