package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStagesFile(t *testing.T) {
	tools := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tools, "bin"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tools, "stages"), 0o750); err != nil {
		t.Fatal(err)
	}
	kwok := "kind: Stage\nmetadata:\n  name: node-initialize\n---\nkind: Stage\nmetadata:\n  name: pod-ready\n---\nkind: Stage\nmetadata:\n  name: pod-complete\n---\nkind: Stage\nmetadata:\n  name: pod-delete\n---\n"
	if err := os.WriteFile(filepath.Join(tools, "stages", "stages.yaml"), []byte(kwok), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		noPods bool
		want   []string
	}{
		"PodRunner": {
			reason: "With the pod runner, pods become Running through pod-running and Ready only when the runner says so; Jobs' pods end when their containers do (no pod-complete).",
			want:   []string{"node-initialize", "pod-delete", "pod-running"},
		},
		"NoPods": {
			reason: "Without the pod runner (benchmarks), kwok's own stages make pods Ready.",
			noPods: true,
			want:   []string{"node-initialize", "pod-ready", "pod-complete", "pod-delete"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := &Cluster{opts: Options{Dir: t.TempDir(), NoPods: tc.noPods}, tools: map[string]string{"kwok": filepath.Join(tools, "bin", "kwok")}}
			f, err := c.stagesFile()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(f)
			var got []string
			for l := range strings.SplitSeq(string(b), "\n") {
				if n, ok := strings.CutPrefix(l, "  name: "); ok {
					got = append(got, n)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nstagesFile(): -want, +got stage names:\n%s", tc.reason, diff)
			}
		})
	}
}
