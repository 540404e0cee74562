package podrunner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// liveSource is a fakeSource whose objects a test changes while a pod runs.
type liveSource struct {
	mu sync.Mutex
	fakeSource
}

func (s *liveSource) ConfigMap(ctx context.Context, name string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.fakeSource.ConfigMap(ctx, name)
	return maps.Clone(d), err
}

func (s *liveSource) Secret(ctx context.Context, name string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.fakeSource.Secret(ctx, name)
	return maps.Clone(d), err
}

func (s *liveSource) set(kind, name, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := s.configMaps
	if kind == "Secret" {
		objs = s.secrets
	}
	objs[name] = map[string][]byte{key: []byte(value)}
}

// TestVolumesRefreshed proves what the kubelet does for a running pod: a
// change of a ConfigMap or Secret reaches the files its containers read
// (paths in them mapped as at start), from the init containers on.
func TestVolumesRefreshed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes in a network namespace")
	}
	testenv.Root(t)
	src := &liveSource{fakeSource: fakeSource{
		configMaps: map[string]map[string][]byte{"cfg": {"app.conf": []byte("version 1\ninclude /etc/auth/auth.conf\n")}},
		secrets:    map[string]map[string][]byte{"auth": {"auth.conf": []byte("password one\n")}},
	}}
	mounts := []corev1.VolumeMount{{Name: "out", MountPath: "/out"}, {Name: "cfg", MountPath: "/etc/cfg"}, {Name: "auth", MountPath: "/etc/auth"}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		// The init container waits for a change, as prepare-data waits for
		// the configuration composed for its pod.
		InitContainers: []corev1.Container{{
			Name: "wait", Image: "redis", VolumeMounts: mounts,
			Command: []string{"sh", "-c", `until grep -q "version 2" /etc/cfg/app.conf; do sleep 0.1; done; cp /etc/cfg/app.conf /out/init`},
		}},
		Containers: []corev1.Container{{
			Name: "app", Image: "redis", VolumeMounts: mounts,
			Command: []string{"sh", "-c", `while :; do cat /etc/cfg/app.conf /etc/auth/auth.conf > /out/seen.new && mv /out/seen.new /out/seen; sleep 0.1; done`},
		}},
		Volumes: []corev1.Volume{
			{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "auth", Items: []corev1.KeyToPath{{Key: "auth.conf", Path: "auth.conf"}}}}},
		},
	}}
	pod.Name, pod.Namespace = "app-0", "team-a"
	dir := t.TempDir()
	started := make(chan error, 1)
	var p *Pod
	go func() {
		var err error
		p, err = Start(context.Background(), pod, src, Options{Dir: dir, IP: testenv.PodIP(t), Resolve: Redis})
		started <- err
	}()
	time.Sleep(2 * RefreshPeriod)
	src.set("ConfigMap", "cfg", "app.conf", "version 2\ninclude /etc/auth/auth.conf\n")
	if err := <-started; err != nil {
		t.Fatalf("Start(...): the init container should have seen the ConfigMap change: %v", err)
	}
	defer p.Stop()
	auth := filepath.Join(dir, "volumes", "auth")
	seen := func(want string) func() error {
		return func() error {
			b, err := os.ReadFile(filepath.Join(dir, "volumes", "out", "seen"))
			if diff := cmp.Diff(want, string(b)); diff != "" {
				return fmt.Errorf("what the container reads: -want, +got:\n%s (%w)", diff, err)
			}
			return nil
		}
	}
	testenv.Eventually(t, 10*time.Second, "the container reads the ConfigMap the init container waited for", seen("version 2\ninclude "+auth+"/auth.conf\npassword one\n"))
	src.set("Secret", "auth", "auth.conf", "password two\n")
	testenv.Eventually(t, 10*time.Second, "the container reads the changed Secret", seen("version 2\ninclude "+auth+"/auth.conf\npassword two\n"))
	if b, err := os.ReadFile(filepath.Join(dir, "volumes", "out", "init")); err != nil || !strings.HasPrefix(string(b), "version 2\n") {
		t.Errorf("The init container should have copied the changed ConfigMap: %q, %v", b, err)
	}
}
