package local

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPickRange(t *testing.T) {
	cases := map[string]struct {
		reason string
		file   string
		want   [2]int
	}{
		"BelowTheEphemeralRange": {
			reason: "The 10,000 ports below the kernel's ephemeral range: no bind(0) or outgoing connection takes them.",
			file:   "32768\t60999\n",
			want:   [2]int{22768, 32768},
		},
		"NoRoomBelow": {
			reason: "A range starting too low leaves no room below it: the kernel picks.",
			file:   "8000\t60999\n",
		},
		"Unreadable": {
			reason: "A file that is not two numbers: the kernel picks.",
			file:   "garbage\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "range")
			if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			lo, hi := pickRange(file)
			if diff := cmp.Diff(tc.want, [2]int{lo, hi}); diff != "" {
				t.Errorf("%s\npickRange(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestFreePorts checks the ports are distinct, outside the kernel's
// ephemeral range, and free to listen on.
func TestFreePorts(t *testing.T) {
	ports, err := freePorts(20)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := pickRange(portRangeFile)
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d picked twice", p)
		}
		seen[p] = true
		if hi > lo && (p < lo || p >= hi) {
			t.Errorf("port %d outside [%d, %d), below the ephemeral range", p, lo, hi)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d is not free: %v", p, err)
			continue
		}
		_ = l.Close()
	}
}
