package local

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHostsBlock checks that each control plane's block of the hosts file is
// added, replaced and removed on its own, and that no other line changes.
func TestHostsBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	orig := "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# a comment the admin wrote\n"
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	steps := []struct {
		reason string
		dir    string
		lines  []string
		want   string
	}{
		{
			reason: "A first block is appended after the admin's lines.",
			dir:    "/a", lines: []string{"10.96.0.10 cache-redis.team-a.svc.cluster.local"},
			want: orig + "# BEGIN redishttp make dev /a (removed by make dev-down)\n10.96.0.10 cache-redis.team-a.svc.cluster.local\n# END redishttp make dev /a\n",
		},
		{
			reason: "Another control plane's block leaves the first alone.",
			dir:    "/b", lines: []string{"10.97.0.10 x.y.svc.cluster.local"},
			want: orig + "# BEGIN redishttp make dev /a (removed by make dev-down)\n10.96.0.10 cache-redis.team-a.svc.cluster.local\n# END redishttp make dev /a\n" +
				"# BEGIN redishttp make dev /b (removed by make dev-down)\n10.97.0.10 x.y.svc.cluster.local\n# END redishttp make dev /b\n",
		},
		{
			reason: "A changed cluster replaces its own block only.",
			dir:    "/a", lines: []string{"10.96.0.10 cache-redis.team-a.svc.cluster.local", "10.96.0.11 cache-http.team-a.svc.cluster.local"},
			want: orig + "# BEGIN redishttp make dev /b (removed by make dev-down)\n10.97.0.10 x.y.svc.cluster.local\n# END redishttp make dev /b\n" +
				"# BEGIN redishttp make dev /a (removed by make dev-down)\n10.96.0.10 cache-redis.team-a.svc.cluster.local\n10.96.0.11 cache-http.team-a.svc.cluster.local\n# END redishttp make dev /a\n",
		},
		{
			reason: "Removing a block leaves the other and the admin's lines.",
			dir:    "/a",
			want:   orig + "# BEGIN redishttp make dev /b (removed by make dev-down)\n10.97.0.10 x.y.svc.cluster.local\n# END redishttp make dev /b\n",
		},
		{
			reason: "Removing the last block gives the file back as it was.",
			dir:    "/b",
			want:   orig,
		},
	}
	for _, s := range steps {
		if err := setHostsBlock(path, s.dir, s.lines); err != nil {
			t.Fatalf("%s\nsetHostsBlock(...): %v", s.reason, err)
		}
		if diff := cmp.Diff(s.want, read()); diff != "" {
			t.Errorf("%s\nsetHostsBlock(...): -want, +got:\n%s", s.reason, diff)
		}
	}
	if err := RemoveServiceNames(path, "/never-started"); err != nil || read() != orig {
		t.Errorf("RemoveServiceNames(a directory without a block) changed the file or failed: %v", err)
	}
}

func TestServiceNameLines(t *testing.T) {
	svc := func(ns, name, ip string) corev1.Service {
		return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
	}
	got := serviceNameLines([]corev1.Service{
		svc("team-a", "cache-redis", "10.96.0.20"),
		svc("team-a", "cache-redis-headless", "None"),
		svc("team-a", "cache-http", "10.96.0.21"),
		svc("team-b", "pending", ""),
	})
	want := []string{"10.96.0.20 cache-redis.team-a.svc.cluster.local", "10.96.0.21 cache-http.team-a.svc.cluster.local"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("serviceNameLines(...): a ClusterIP Service's name only, sorted: -want, +got:\n%s", diff)
	}
}
