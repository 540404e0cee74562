package gateway

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMemoryFair: what identities may take of a memory of 16 MiB: a share
// of 4 MiB and a chunk (for a request's body) each, what three shares leave
// only for identities holding at most 1 MiB.
func TestMemoryFair(t *testing.T) {
	const mib = 1 << 20
	type take struct {
		id string
		n  int64
	}
	cases := map[string]struct {
		reason string
		takes  []take
		want   []bool
	}{
		"AQuarterEach": {
			reason: "An identity holds at most a quarter and a chunk, however it takes it.",
			takes:  []take{{"a", 4 * mib}, {"a", reserveChunk}, {"a", 1}, {"b", 4*mib + reserveChunk + 1}},
			want:   []bool{true, true, false, false},
		},
		"TwoLeaveHalf": {
			reason: "Two identities at their shares leave another its whole share.",
			takes:  []take{{"a", 4*mib + reserveChunk}, {"b", 4*mib + reserveChunk}, {"c", 4*mib + reserveChunk}},
			want:   []bool{true, true, true},
		},
		"ReserveForSmallReads": {
			reason: "Once three identities hold their shares, one that would hold more than a sixteenth is refused, those under it are served until the memory is full.",
			takes: []take{
				{"a", 4*mib + reserveChunk}, {"b", 4*mib + reserveChunk}, {"c", 4*mib + reserveChunk},
				{"d", 2 * mib}, {"c", 1}, {"d", mib}, {"d", 1},
				{"e", mib}, {"f", mib}, {"g", mib}, {"g", mib / 2}, {"h", mib/2 - 3*reserveChunk}, {"i", 1},
			},
			want: []bool{
				true, true, true,
				false, false, true, false,
				true, true, false, true, true, false,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := newMemory(16 * mib)
			got := make([]bool, 0, len(tc.takes))
			for _, tk := range tc.takes {
				got = append(got, m.take(tag{tk.id[0]}, tk.n))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\ntake(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
