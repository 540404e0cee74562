package fn

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// pod is what a kubelet would hand to the Redis container: the files of its
// ConfigMap and Secret volumes, and the environment from its Secret refs.
type pod struct {
	// root is a directory standing in for the container's filesystem root.
	root     string
	conf     string // path of redis.conf under root
	password string
	sts      *appsv1.StatefulSet
}

// composePod runs the function for spec with a random password, then lays
// the composed ConfigMap's and Secret's files out under a temporary root at
// the container's mount paths, as a kubelet would.
func composePod(t *testing.T, spec string) *pod {
	t.Helper()
	f := NewFunction(logging.NewNopLogger())
	rsp, err := f.RunFunction(context.Background(), &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(spec)}})
	if err != nil {
		t.Fatalf("RunFunction(...): %v", err)
	}
	if len(rsp.GetResults()) > 0 && rsp.GetResults()[0].GetSeverity() == fnv1.Severity_SEVERITY_FATAL {
		t.Fatalf("RunFunction(...): fatal result: %s", rsp.GetResults()[0].GetMessage())
	}
	objs := rsp.GetDesired().GetResources()
	sts := &appsv1.StatefulSet{}
	cm := &corev1.ConfigMap{}
	sec := &corev1.Secret{}
	for name, o := range map[string]runtime.Object{"statefulset": sts, "configmap": cm, "secret-auth": sec} {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[name].GetResource().AsMap(), o); err != nil {
			t.Fatalf("cannot convert composed %s: %v", name, err)
		}
	}

	p := &pod{root: t.TempDir(), sts: sts, password: string(sec.Data[passwordKey])}
	podSpec := sts.Spec.Template.Spec
	files := map[string]map[string][]byte{} // volume name -> file name -> content
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
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// redis.conf names the container's paths; point them at the stand-in
	// root, and nothing else.
	cmd := podSpec.Containers[0].Command
	p.conf = filepath.Join(p.root, cmd[len(cmd)-1])
	b, err := os.ReadFile(p.conf)
	if err != nil {
		t.Fatalf("the container's command names %q, which no volume provides: %v", cmd[len(cmd)-1], err)
	}
	conf := string(b)
	for _, m := range podSpec.Containers[0].VolumeMounts {
		conf = strings.ReplaceAll(conf, " "+m.MountPath, " "+filepath.Join(p.root, m.MountPath))
	}
	if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestComposedRedisRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	p := composePod(t, `{"memory": "256Mi", "maxmemoryPolicy": "volatile-lru",
		"persistence": {"rdb": true, "appendOnly": true}, "config": {"timeout": "300", "notify-keyspace-events": "Ex"}}`)
	r := testenv.StartRedis(t, p.conf)
	ctx := context.Background()

	type want struct {
		pong string
		err  string
	}
	auth := map[string]struct {
		reason   string
		password string
		want     want
	}{
		"RightPassword": {
			reason:   "The password from the instance's Secret should authenticate.",
			password: p.password,
			want:     want{pong: "PONG"},
		},
		"NoPassword": {
			reason: "A client without a password should be refused.",
			want:   want{err: "NOAUTH Authentication required."},
		},
		"WrongPassword": {
			reason:   "A client with a wrong password should be refused.",
			password: "not-the-password",
			want:     want{err: "WRONGPASS invalid username-password pair or user is disabled."},
		},
	}
	for name, tc := range auth {
		t.Run(name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: tc.password, MaxRetries: -1, DisableIdentity: true})
			defer c.Close()
			got := want{}
			pong, err := c.Ping(ctx).Result()
			got.pong = pong
			if err != nil {
				got.err = err.Error()
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nPING: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}

	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: p.password, DisableIdentity: true})
	defer c.Close()
	got := map[string]string{}
	for _, k := range []string{"maxmemory", "maxmemory-policy", "appendonly", "appendfsync", "save", "timeout", "notify-keyspace-events", "protected-mode"} {
		v, err := c.ConfigGet(ctx, k).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", k, err)
		}
		got[k] = v[k]
	}
	wantConf := map[string]string{
		"maxmemory":              fmt.Sprint(192 << 20), // 75% of 256Mi
		"maxmemory-policy":       "volatile-lru",
		"appendonly":             "yes",
		"appendfsync":            "everysec",
		"save":                   "3600 1 300 100 60 10000",
		"timeout":                "300",
		"notify-keyspace-events": "xE",
		"protected-mode":         "yes",
	}
	if diff := cmp.Diff(wantConf, got); diff != "" {
		t.Errorf("Redis should run with the settings the spec asked for.\nCONFIG GET: -want, +got:\n%s", diff)
	}
	limit := p.sts.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().Value()
	mm, err := strconv.ParseInt(got["maxmemory"], 10, 64)
	if err != nil || mm <= 0 || mm >= limit {
		t.Errorf("Redis's maxmemory %q should be set and below the container's memory limit %d, so Redis evicts before the pod is OOM-killed", got["maxmemory"], limit)
	}
}

func TestComposedRedisWithoutPersistence(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	p := composePod(t, `{"memory": "64Mi", "maxmemoryPolicy": "noeviction", "persistence": {"rdb": false, "appendOnly": false}}`)
	r := testenv.StartRedis(t, p.conf)
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: p.password, DisableIdentity: true})
	defer c.Close()
	ctx := context.Background()
	got := map[string]string{}
	for _, k := range []string{"save", "appendonly", "maxmemory"} {
		v, err := c.ConfigGet(ctx, k).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", k, err)
		}
		got[k] = v[k]
	}
	want := map[string]string{"save": "", "appendonly": "no", "maxmemory": fmt.Sprint(48 << 20)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Turning persistence off should leave Redis with no RDB saves and no AOF.\nCONFIG GET: -want, +got:\n%s", diff)
	}

	// With noeviction, writes past maxmemory fail with OOM instead of the
	// kernel killing the pod: the point of maxmemory below the limit.
	val := strings.Repeat("x", 1<<20)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = c.Set(ctx, fmt.Sprintf("k%d", i), val, 0).Err()
	}
	if err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Errorf("Writing 100MiB into a 64Mi instance with noeviction should be refused with OOM once maxmemory is reached; got %v", err)
	}
}

// probeInPodNetwork runs redis-server (unless down) and a probe command in a
// private network namespace, where, as in a pod, 127.0.0.1:6379 is the
// instance's own. It returns the probe's exit code and output.
func probeInPodNetwork(t *testing.T, p *pod, probe []string, env []string, down bool) (int, string) {
	t.Helper()
	testenv.Binary(t, "redis-cli")
	script := `set -e
ip link set lo up
if [ "$START" = 1 ]; then
  redis-server "$CONF" --daemonize yes --pidfile "$ROOT/redis.pid" --logfile "$ROOT/redis.log" --dir "$ROOT"
  for i in $(seq 1 100); do [ -f "$ROOT/redis.pid" ] && redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.05; done
fi
set +e
env -i PATH="$PATH" $PROBE_ENV "$@"
code=$?
# SIGKILL: on SIGTERM Redis saves first and refuses to exit if it cannot.
[ -f "$ROOT/redis.pid" ] && kill -9 "$(cat "$ROOT/redis.pid")"
exit $code`
	args := []string{"-n"}
	if os.Getuid() != 0 {
		args = []string{"-rn"}
	}
	args = append(args, "sh", "-c", script, "probe")
	args = append(args, probe...)
	cmd := exec.Command("unshare", args...)
	start := "1"
	if down {
		start = "0"
	}
	cmd.Env = append(os.Environ(), "CONF="+p.conf, "ROOT="+t.TempDir(), "START="+start, "PROBE_ENV="+strings.Join(env, " "))
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok { //nolint:errorlint // exec returns *ExitError directly.
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("cannot run the probe in a private network namespace: %v\n%s", err, out)
	}
	return 0, string(out)
}

func TestProbesAuthenticate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	p := composePod(t, `{"memory": "64Mi"}`)
	c := p.sts.Spec.Template.Spec.Containers[0]
	// The environment a kubelet would give the probes, from the pod spec.
	env := func(password string) []string {
		var out []string
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.Name+"="+password)
			}
		}
		return out
	}
	type want struct{ ok bool }
	cases := map[string]struct {
		reason string
		env    []string
		down   bool
		want   want
	}{
		"Healthy": {
			reason: "With Redis up and the Secret's password, the probe should pass.",
			env:    env(p.password),
			want:   want{ok: true},
		},
		"WrongPassword": {
			reason: "With a wrong password the probe should fail, though redis-cli itself exits 0.",
			env:    env("wrong-password"),
			want:   want{ok: false},
		},
		"NoPassword": {
			reason: "Without a password the probe should fail (NOAUTH).",
			want:   want{ok: false},
		},
		"RedisDown": {
			reason: "With nothing listening the probe should fail.",
			env:    env(p.password),
			down:   true,
			want:   want{ok: false},
		},
	}
	probes := map[string][]string{
		"readiness": c.ReadinessProbe.Exec.Command,
		"liveness":  c.LivenessProbe.Exec.Command,
	}
	for name, tc := range cases {
		for probe, cmd := range probes {
			t.Run(name+"/"+probe, func(t *testing.T) {
				code, out := probeInPodNetwork(t, p, cmd, tc.env, tc.down)
				if diff := cmp.Diff(tc.want, want{ok: code == 0}, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("%s\n%s probe exited %d (%s): -want, +got:\n%s", tc.reason, probe, code, strings.TrimSpace(out), diff)
				}
			})
		}
	}
}
