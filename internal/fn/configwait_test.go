package fn

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/podrunner"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestComposedPodWaitsForItsConfig runs a composed pod whose ConfigMap still
// holds the previous redis.conf, as when Crossplane applies the StatefulSet
// of a memory change before the ConfigMap: Redis must not run until the
// kubelet (here the pod runner) has the redis.conf composed for the pod, and
// then runs that one. Before, it ran the previous maxmemory.
func TestComposedPodWaitsForItsConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	testenv.Root(t)
	testenv.Binary(t, "redis-server")
	testenv.Binary(t, "redis-cli")
	previous := composePod(t, `{"memory": "256Mi"}`)
	p := composePod(t, `{"memory": "512Mi"}`)
	name := p.sts.Spec.Template.Spec.Volumes[0].ConfigMap.Name
	p.src.mu.Lock()
	p.src.configMaps[name] = previous.src.configMaps[name]
	p.src.mu.Unlock()

	dir := t.TempDir()
	ip := testenv.PodIP(t)
	started := make(chan error, 1)
	var rp *podrunner.Pod
	go func() {
		var err error
		rp, err = podrunner.Start(context.Background(), p.spec, p.src, podrunner.Options{Dir: dir, IP: ip, Resolve: podrunner.Redis})
		started <- err
	}()
	ctx := context.Background()
	addr := net.JoinHostPort(ip, strconv.Itoa(int(p.spec.Spec.Containers[0].Ports[0].ContainerPort)))
	rc := redis.NewClient(&redis.Options{Addr: addr, Password: p.password, MaxRetries: -1, DisableIdentity: true, DialTimeout: time.Second})
	defer rc.Close()
	testenv.Eventually(t, 30*time.Second, "prepare-data waits for the pod's own redis.conf", func() error {
		b, _ := os.ReadFile(filepath.Join(dir, "logs", prepareDataContainer+".log"))
		if !strings.Contains(string(b), "waiting for the configuration composed for this pod") {
			return fmt.Errorf("prepare-data's log: %q", b)
		}
		return nil
	})
	// Two of the pod runner's refresh periods: the wait goes on.
	time.Sleep(2 * podrunner.RefreshPeriod)
	if err := rc.Ping(ctx).Err(); err == nil {
		t.Fatal("Redis runs with the previous redis.conf in its ConfigMap")
	}
	select {
	case err := <-started:
		t.Fatalf("the pod started with the previous redis.conf (%v)", err)
	default:
	}

	p.src.mu.Lock()
	p.src.configMaps[name] = map[string][]byte{confKey: []byte(p.conf)}
	p.src.mu.Unlock()
	if err := <-started; err != nil {
		t.Fatalf("the pod did not start once its redis.conf arrived: %v", err)
	}
	t.Cleanup(rp.Stop)
	testenv.Eventually(t, 30*time.Second, "the pod is ready", func() error { return rp.Ready(ctx) })
	got, err := rc.ConfigGet(ctx, "maxmemory").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(384 << 20); got["maxmemory"] != want { // 75% of 512Mi
		t.Errorf("maxmemory: want %s (the composed redis.conf), got %s", want, got["maxmemory"])
	}
}
