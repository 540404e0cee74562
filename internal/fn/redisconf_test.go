package fn

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestMaxmemoryFor(t *testing.T) {
	cases := map[string]struct {
		reason string
		limit  int64
		want   string
	}{
		"Smallest": {
			reason: "32Mi leaves 24MiB for data, written in whole MiB.",
			limit:  32 << 20,
			want:   "24mb",
		},
		"Default": {
			reason: "256Mi leaves 192MiB for data.",
			limit:  256 << 20,
			want:   "192mb",
		},
		"Decimal": {
			reason: "A decimal quantity (1G) is rounded down to whole MiB, never above 75%.",
			limit:  1_000_000_000,
			want:   "715mb",
		},
		"OddBytes": {
			reason: "Below 64MiB an uneven limit is written as plain bytes.",
			limit:  50_000_001,
			want:   "37500000",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mm := maxmemoryFor(tc.limit)
			if diff := cmp.Diff(tc.want, redisBytes(mm)); diff != "" {
				t.Errorf("%s\nredisBytes(maxmemoryFor(%d)): -want, +got:\n%s", tc.reason, tc.limit, diff)
			}
			if mm*100 > tc.limit*75 || mm*100 < tc.limit*70 {
				t.Errorf("%s\nmaxmemoryFor(%d) = %d, want between 70%% and 75%% of the limit", tc.reason, tc.limit, mm)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	path := field.NewPath("spec", "config")
	type want struct {
		dirs []directive
		errs []string
	}
	cases := map[string]struct {
		reason string
		in     map[string]string
		want   want
	}{
		"Empty": {
			reason: "No extra config is no directives.",
		},
		"SortedByName": {
			reason: "Directives come out sorted, so redis.conf and its checksum do not change between runs.",
			in:     map[string]string{"timeout": "300", "hz": "20", "activedefrag": "yes"},
			want:   want{dirs: []directive{{"activedefrag", "yes"}, {"hz", "20"}, {"timeout", "300"}}},
		},
		"Uppercase": {
			reason: "An allowed directive in the wrong case names the right spelling.",
			in:     map[string]string{"Timeout": "1"},
			want:   want{errs: []string{`spec.config[Timeout]: Invalid value: "Timeout": directive names are lowercase: use "timeout"`}},
		},
		"Dangerous": {
			reason: "Directives outside the allow-list, such as rename-command, are refused.",
			in:     map[string]string{"rename-command": "FLUSHALL x"},
			want:   want{errs: []string{`spec.config[rename-command]: Forbidden: "rename-command" is not an allowed directive; allowed: ` + strings.Join(AllowedDirectives(), ", ")}},
		},
		"Managed": {
			reason: "Directives redishttp manages are refused with that reason.",
			in:     map[string]string{"dir": "/tmp"},
			want:   want{errs: []string{`spec.config[dir]: Forbidden: "dir" is managed by redishttp from the instance's spec and cannot be set in spec.config`}},
		},
		"PlusSign": {
			reason: "redis-server refuses \"+5\" (string2ll takes no '+'), so the function must too.",
			in:     map[string]string{"timeout": "+5"},
			want:   want{errs: []string{`spec.config[timeout]: Invalid value: "+5": must be written as Redis reads it: no '+' sign, no leading zeros (5)`}},
		},
		"LeadingZeros": {
			reason: "redis-server refuses leading zeros (\"007\", \"0500\"), so the function must too.",
			in:     map[string]string{"timeout": "007", "hz": "0500"},
			want: want{errs: []string{
				`spec.config[hz]: Invalid value: "0500": must be written as Redis reads it: no '+' sign, no leading zeros (500)`,
				`spec.config[timeout]: Invalid value: "007": must be written as Redis reads it: no '+' sign, no leading zeros (7)`,
			}},
		},
		"NegativeZero": {
			reason: "redis-server refuses \"-0\".",
			in:     map[string]string{"slowlog-log-slower-than": "-0"},
			want:   want{errs: []string{`spec.config[slowlog-log-slower-than]: Invalid value: "-0": must be written as Redis reads it: no '+' sign, no leading zeros (0)`}},
		},
		"Spaces": {
			reason: "A number with spaces around it is not one redis-server reads.",
			in:     map[string]string{"timeout": " 5"},
			want:   want{errs: []string{`spec.config[timeout]: Invalid value: " 5": must be a whole number from 0 to 2147483647`}},
		},
		"EmptyKeyspaceEvents": {
			reason: "An empty value writes a directive without an argument, which redis-server refuses.",
			in:     map[string]string{"notify-keyspace-events": ""},
			want:   want{errs: []string{`spec.config[notify-keyspace-events]: Invalid value: "": must not be empty: leave notify-keyspace-events out to keep notifications off`}},
		},
		"KeyspaceEvents": {
			reason: "notify-keyspace-events only takes Redis's event classes.",
			in:     map[string]string{"notify-keyspace-events": "Ex; include"},
			want:   want{errs: []string{`spec.config[notify-keyspace-events]: Invalid value: "Ex; include": must be a combination of the classes K E g $ l s h z x e t m d n A (see Redis keyspace notifications)`}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dirs, errs := parseConfig(tc.in, path)
			got := want{dirs: dirs}
			for _, e := range errs {
				got.errs = append(got.errs, e.Error())
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nparseConfig(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestAllowedDirectivesStartRedis proves every allow-listed directive, at a
// typical value, is one redis-server accepts, so a tenant never gets a pod
// that crash-loops on its own config.
func TestAllowedDirectivesStartRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	sample := map[string]string{"notify-keyspace-events": "Ex"}
	for _, d := range AllowedDirectives() {
		if _, ok := sample[d]; ok {
			continue
		}
		// "no" for switches: Debian's redis-server lacks the jemalloc that
		// activedefrag needs (the official images have it).
		for _, v := range []string{"no", "10", "1"} {
			if allowed[d](v) == "" {
				sample[d] = v
				break
			}
		}
	}
	spec := `{"memory": "64Mi", "config": {`
	i := 0
	for k, v := range sample {
		if i > 0 {
			spec += ","
		}
		spec += `"` + k + `": "` + v + `"`
		i++
	}
	spec += `}}`
	p := composePod(t, spec)
	b := p.conf
	for d := range sample {
		if !strings.Contains(b, "\n"+d+" ") {
			t.Fatalf("redis.conf lacks %q:\n%s", d, b)
		}
	}
	// run fails the test if redis-server refuses the file.
	p.run(t)
}

// TestREADMEListsAllowedDirectives keeps the README's list of spec.config
// directives in step with the code.
func TestREADMEListsAllowedDirectives(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("cannot read README.md: %v", err)
	}
	var missing []string
	for _, d := range AllowedDirectives() {
		if !strings.Contains(string(b), "`"+d+"`") {
			missing = append(missing, d)
		}
	}
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("README.md should list every directive spec.config allows.\n-want, +got missing:\n%s", diff)
	}
}
