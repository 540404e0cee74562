package fn

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ai-decenter/redishttp/internal/testenv"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// A volumePod runs the pod the function composes, the way a kubelet would,
// on a data directory that outlives it: each start lays out the ConfigMap's
// and Secret's files at their mount paths under root, runs every init
// container to completion, then the Redis container; stop sends SIGTERM, as
// a kubelet does when the StatefulSet rolls.
type volumePod struct {
	t    *testing.T
	root string
	port int

	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{}
}

func newVolumePod(t *testing.T) *volumePod {
	t.Helper()
	testenv.Binary(t, "redis-server")
	testenv.Binary(t, "redis-cli")
	return &volumePod{t: t, root: t.TempDir(), port: testenv.FreePort(t)}
}

// hostPath maps a path in the container to the stand-in root.
func (p *volumePod) hostPath(podSpec corev1.PodSpec, s string) string {
	for _, m := range podSpec.Containers[0].VolumeMounts {
		if s == m.MountPath || strings.HasPrefix(s, m.MountPath+"/") {
			return filepath.Join(p.root, s)
		}
	}
	return s
}

// start composes spec and runs the resulting pod; it returns a client once
// Redis answers, having loaded its data.
func (p *volumePod) start(spec string) *redis.Client {
	t := p.t
	t.Helper()
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(spec)}})
	if r := rsp.GetResults(); len(r) > 0 && r[0].GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
		t.Fatalf("RunFunction(%s): %s", spec, r[0].GetMessage())
	}
	objs := rsp.GetDesired().GetResources()
	sts, cm, sec := &appsv1.StatefulSet{}, &corev1.ConfigMap{}, &corev1.Secret{}
	for name, o := range map[string]runtime.Object{"statefulset": sts, "configmap": cm, "secret-auth": sec} {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[name].GetResource().AsMap(), o); err != nil {
			t.Fatalf("cannot convert composed %s: %v", name, err)
		}
	}
	podSpec := sts.Spec.Template.Spec
	files := map[string]map[string][]byte{}
	for _, v := range podSpec.Volumes {
		files[v.Name] = map[string][]byte{}
		switch {
		case v.ConfigMap != nil:
			for _, it := range v.ConfigMap.Items {
				files[v.Name][it.Path] = []byte(cm.Data[it.Key])
			}
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				files[v.Name][it.Path] = sec.Data[it.Key]
			}
		}
	}
	for _, m := range podSpec.Containers[0].VolumeMounts {
		dir := filepath.Join(p.root, m.MountPath)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		for name, b := range files[m.Name] {
			if m.Name == "config" {
				s := string(b)
				for _, mm := range podSpec.Containers[0].VolumeMounts {
					s = strings.ReplaceAll(s, " "+mm.MountPath, " "+filepath.Join(p.root, mm.MountPath))
				}
				b = []byte(s)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range podSpec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env = append(env, e.Name+"="+string(sec.Data[e.ValueFrom.SecretKeyRef.Key]))
		}
	}
	argv := func(c corev1.Container) []string {
		var out []string
		for _, a := range append(append([]string{}, c.Command...), c.Args...) {
			out = append(out, p.hostPath(podSpec, a))
		}
		return out
	}

	for _, c := range podSpec.InitContainers {
		a := argv(c)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, a[0], a[1:]...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("init container %q failed: %v\n%s", c.Name, err, out)
		}
		t.Logf("init container %q:\n%s", c.Name, out)
	}

	a := argv(podSpec.Containers[0])
	// Not the pod's port: tests run side by side on one host.
	a = append(a, "--port", fmt.Sprint(p.port), "--bind", "127.0.0.1")
	p.cmd = exec.Command(a[0], a[1:]...)
	p.cmd.Env = env
	p.out = &bytes.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("cannot start %v: %v", a, err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(p.cmd, p.exited)
	t.Cleanup(func() { p.kill() })

	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", p.port), Password: string(sec.Data["password"]), DisableIdentity: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return c
		}
		select {
		case <-p.exited:
			t.Fatalf("redis-server exited: %s", p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis did not answer: %v\n%s", err, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop stops Redis as a kubelet does: SIGTERM, then the grace period.
func (p *volumePod) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.kill()
		p.t.Fatalf("redis-server did not stop on SIGTERM:\n%s", p.out)
	}
}

func (p *volumePod) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// TestPersistenceChangesKeepKeys proves that no persistence change loses a
// key: each step restarts the pod with a changed spec, as a roll of the
// StatefulSet does, and every key written so far must still be there.
func TestPersistenceChangesKeepKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	steps := []struct {
		reason string
		spec   string
	}{
		{reason: "The first start, with RDB snapshots only (the default).", spec: `{"memory": "64Mi"}`},
		{reason: "Switching the AOF on must load the RDB's keys, not start empty.", spec: `{"memory": "64Mi", "persistence": {"appendOnly": true}}`},
		{reason: "Switching the AOF off must keep the keys the AOF holds.", spec: `{"memory": "64Mi", "persistence": {"appendOnly": false}}`},
		{reason: "Resizing memory restarts Redis with its data.", spec: `{"memory": "128Mi"}`},
		{reason: "Switching the AOF on again must not load the AOF left from the first time.", spec: `{"memory": "128Mi", "persistence": {"appendOnly": true}}`},
		{reason: "AOF only: the AOF holds every key.", spec: `{"memory": "128Mi", "persistence": {"rdb": false, "appendOnly": true}}`},
		{reason: "From AOF only to no persistence at all, the change itself keeps the keys.", spec: `{"memory": "128Mi", "persistence": {"rdb": false, "appendOnly": false}}`},
	}
	p := newVolumePod(t)
	ctx := context.Background()
	var want []string
	for i, s := range steps {
		c := p.start(s.spec)
		got, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatalf("KEYS: %v", err)
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("step %d: %s\nspec %s: every key written before should be there.\nKEYS *: -want, +got:\n%s", i, s.reason, s.spec, diff)
		}
		k := fmt.Sprintf("k%d", i)
		if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		want = append(want, k)
		p.stop()
	}
}
