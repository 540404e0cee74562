package coordinator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeldAction(t *testing.T) {
	held := func(offset, keys int64) node {
		return node{Up: true, Role: "slave", MasterAddr: "127.0.0.1:1", Offset: offset, Keys: keys}
	}
	replica := func(offset, keys int64) node {
		return node{Up: true, Role: "slave", MasterAddr: "pod-0:6379", Offset: offset, Keys: keys}
	}
	cases := map[string]struct {
		reason string
		own    node
		peers  []node
		want   int
	}{
		"EveryWrite": {
			reason: "A held Redis whose replicas have its offset (it saved every write as it stopped) is promoted: it has every write any pod has.",
			own:    held(3044, 100),
			peers:  []node{replica(3044, 100), replica(3044, 100)},
			want:   promoteHeld,
		},
		"PeersHeldAndBehind": {
			reason: "Pods that started held with older data never win over the master's data.",
			own:    held(3044, 100),
			peers:  []node{held(0, 0), held(2000, 80)},
			want:   promoteHeld,
		},
		"ReplicaAhead": {
			reason: "A replica with a longer history may hold writes the held Redis's disk lost: Sentinel fails over to a replica instead.",
			own:    held(3000, 100),
			peers:  []node{replica(3044, 100), replica(3000, 100)},
			want:   askFailover,
		},
		"ReplicaMoreKeys": {
			reason: "At the same offset, a replica with more keys has more data.",
			own:    held(3044, 99),
			peers:  []node{replica(3044, 100), replica(3044, 99)},
			want:   askFailover,
		},
		"PeerDown": {
			reason: "A pod whose Redis does not answer may have more data: no promotion on a guess.",
			own:    held(3044, 100),
			peers:  []node{replica(3044, 100), {}},
			want:   askFailover,
		},
		"PeerMaster": {
			reason: "Another pod's Redis runs as master: a failover is under way, Sentinel reconfigures this one.",
			own:    held(3044, 100),
			peers:  []node{{Up: true, Role: "master", Offset: 3100, Keys: 100}, replica(3044, 100)},
			want:   waitFailover,
		},
		"Demoted": {
			reason: "A Redis that replicates from another pod was demoted, not restarted: never promoted back.",
			own:    replica(3044, 100),
			peers:  []node{replica(3000, 100), replica(3000, 100)},
			want:   askFailover,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, heldAction(tc.own, tc.peers)); diff != "" {
				t.Errorf("%s\nheldAction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
