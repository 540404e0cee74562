package fn

import (
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/apimachinery/pkg/api/resource"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// containerResources is the composed Redis container's resources.
func containerResources(t *testing.T, rsp *fnv1.RunFunctionResponse) any {
	t.Helper()
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
			t.Fatalf("RunFunction(...): unexpected Fatal: %s", r.GetMessage())
		}
	}
	pod := desiredStatefulSetSpec(t, rsp)["template"].(map[string]any)["spec"].(map[string]any)
	return pod["containers"].([]any)[0].(map[string]any)["resources"]
}

func TestRunFunctionAcceptsSchemaQuantities(t *testing.T) {
	cases := map[string]struct {
		reason string
		spec   string
		want   any
	}{
		"IntegerMemory": {
			reason: "The schema is int-or-string: memory as a JSON integer above int32 must be accepted.",
			spec:   `{"memory": 4294967296}`,
			want: map[string]any{
				"limits":   map[string]any{"cpu": "500m", "memory": "4294967296"},
				"requests": map[string]any{"cpu": "100m", "memory": "4294967296"},
			},
		},
		"NumbersEverywhere": {
			reason: "CPU and storage as JSON numbers, fractional CPU included, are quantities too.",
			spec:   `{"memory": "256Mi", "cpu": {"request": 0.5, "limit": 2}, "storage": {"size": 10737418240}}`,
			want: map[string]any{
				"limits":   map[string]any{"cpu": "2", "memory": "256Mi"},
				"requests": map[string]any{"cpu": "500m", "memory": "256Mi"},
			},
		},
		"Exponent": {
			reason: "A decimal exponent the schema's pattern allows is a quantity.",
			spec:   `{"memory": "1e9"}`,
			want: map[string]any{
				"limits":   map[string]any{"cpu": "500m", "memory": "1e9"},
				"requests": map[string]any{"cpu": "100m", "memory": "1e9"},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}})
			if diff := cmp.Diff(tc.want, containerResources(t, rsp)); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want resources, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionBoundsQuantities(t *testing.T) {
	const pfx = `invalid RedisHttpInstance "team-a/cache": `
	cases := map[string]struct {
		reason string
		spec   string
		want   *fnv1.RunFunctionResponse
	}{
		"HugeMemory": {
			reason: "1e19 bytes is too much, and the message must say so, not that it is below 32Mi.",
			spec:   `{"memory": "1e19"}`,
			want:   refused(pfx + `spec.memory: Invalid value: "10e18": must be at most 1Ti`),
		},
		"HugeIntegerMemory": {
			reason: "The same holds for a JSON number.",
			spec:   `{"memory": 1e19}`,
			want:   refused(pfx + `spec.memory: Invalid value: "10E": must be at most 1Ti`),
		},
		"TooManyCPUs": {
			reason: "CPU has an upper bound too.",
			spec:   `{"memory": "256Mi", "cpu": {"limit": "1000"}}`,
			want:   refused(pfx + `spec.cpu.limit: Invalid value: "1k": must be at most 64`),
		},
		"HugeExponent": {
			reason: "The schema's pattern admits 1e999999999, whose parsing alone takes minutes and gigabytes: refuse it before parsing.",
			spec:   `{"memory": "1e999999999"}`,
			want:   refused(pfx + `spec.memory: Invalid value: "1e999999999": must be a quantity with an exponent of at most two digits, such as 1e9`),
		},
		"HugeNumber": {
			reason: "A JSON number with a huge exponent is refused the same way.",
			spec:   `{"memory": 1e300}`,
			want:   refused(pfx + `spec.memory: Invalid value: "1e+300": must be a quantity with an exponent of at most two digits, such as 1e9`),
		},
		"LongQuantity": {
			reason: "A quantity longer than any sane one is refused before parsing.",
			spec:   `{"memory": "` + strings.Repeat("9", 100) + `"}`,
			want:   refused(pfx + `spec.memory: Invalid value: "` + strings.Repeat("9", 64) + `...": must be a quantity of at most 64 characters`),
		},
		"NegativeStorage": {
			reason: "A negative size is not a size.",
			spec:   `{"memory": "256Mi", "storage": {"size": "-1Gi"}}`,
			want:   refused(pfx + `spec.storage.size: Invalid value: "-1Gi": must be greater than zero`),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(tc.spec)}})
			if diff := cmp.Diff(tc.want, rsp, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want rsp, +got rsp:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestRunFunctionBoundsConfigErrors proves a spec with a huge config (a 1.8 MB
// spec of 170k unknown keys) costs a bounded message and bounded memory,
// where it once made a 137 MB message from 1.2 GB of allocations.
func TestRunFunctionBoundsConfigErrors(t *testing.T) {
	config := make(map[string]any, 170_000)
	for i := range 170_000 {
		config["unknown-directive-"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+strings.Repeat("y", i%5)+"-"+itoa(i)] = "v"
	}
	spec, err := structpb.NewStruct(map[string]any{"memory": "256Mi", "config": config})
	if err != nil {
		t.Fatal(err)
	}
	xr := namespacedXR(`{}`)
	xr.Resource.Fields["spec"] = structpb.NewStructValue(spec)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: xr}})
	runtime.ReadMemStats(&after)

	want := refused(`invalid RedisHttpInstance "team-a/cache": spec.config: Too many: 170000: must have at most 64 items`)
	if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
		t.Errorf("A config with more directives than the schema allows should get one short error.\nRunFunction(...): -want rsp, +got rsp:\n%s", diff)
	}
	// Decoding the 1.8 MB spec itself costs some tens of MB; the report of
	// its mistakes must not cost more.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("RunFunction(...) allocated %d MiB for a 170k-key config; want a bounded cost", alloc>>20)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestRunFunctionBoundsMessage(t *testing.T) {
	// 64 directives (the schema's bound), each a long unknown name with a
	// long value: each problem quotes at most 64 bytes, the whole message at
	// most a few KiB.
	config := map[string]any{}
	for i := range maxConfigDirectives {
		config[strings.Repeat("z", 1000)+itoa(i)] = strings.Repeat("v", 10000)
	}
	spec, _ := structpb.NewStruct(map[string]any{"memory": "256Mi", "config": config})
	xr := namespacedXR(`{}`)
	xr.Resource.Fields["spec"] = structpb.NewStructValue(spec)
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: xr}})
	msg := rsp.GetResults()[0].GetMessage()
	if len(msg) > 5000 || !strings.HasSuffix(msg, " more") {
		t.Errorf("The message for many long mistakes should be bounded and say how many were left out; got %d bytes ending %q", len(msg), msg[max(0, len(msg)-40):])
	}
}

// FuzzQuantitySchema proves the function accepts every quantity the XRDs'
// schema accepts: the pattern controller-gen gives resource.Quantity and the
// CEL rule's isQuantity (the pattern alone lets through a decimal exponent,
// "0.1e.00", which Kubernetes cannot parse and the API server refuses), but
// for those the function refuses on purpose before parsing: longer than 64
// characters, or with an exponent of three digits or more.
func FuzzQuantitySchema(f *testing.F) {
	for _, s := range []string{"256Mi", "1e9", "5.", ".5", "+1Gi", "-1", "1E3", "1E", "1.5e-3", "0", "1e999999999", "12345678901234567890", "0.1e.00"} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(quantitySchemaPattern)
	f.Fuzz(func(t *testing.T, s string) {
		_, errs := decodeSpec(map[string]any{"memory": s})
		if !pattern.MatchString(s) || quantitySize(s) != "" {
			return
		}
		if _, err := resource.ParseQuantity(s); err != nil {
			return // isQuantity(self) is false: the API server refuses it.
		}
		if len(errs) > 0 {
			t.Fatalf("the schema accepts memory %q, the function does not: %v", s, errs)
		}
	})
}
