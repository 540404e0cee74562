package fn

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ai-decenter/redishttp/internal/podrunner"
	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// pod is a composed instance's Redis pod as a kubelet gets it: the
// StatefulSet's pod template, and the composed ConfigMap and Secret it reads.
type pod struct {
	// running is the pod once start ran it.
	running  *podrunner.Pod
	sts      *appsv1.StatefulSet
	spec     *corev1.Pod
	src      objects
	password string
	// conf is redis.conf as composed.
	conf string
}

// objects serves a pod's ConfigMaps, Secrets and claims from memory, as the
// API server and a volume provisioner would.
type objects struct {
	// mu guards the maps: the pod runner reads them while the pod runs, as
	// the kubelet keeps ConfigMap and Secret volumes up to date.
	mu         *sync.Mutex
	configMaps map[string]map[string][]byte
	secrets    map[string]map[string][]byte
	claims     map[string]string
}

func (o objects) ConfigMap(_ context.Context, name string) (map[string][]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d, ok := o.configMaps[name]; ok {
		return maps.Clone(d), nil
	}
	return nil, fmt.Errorf("ConfigMap %q not found", name)
}

func (o objects) Secret(_ context.Context, name string) (map[string][]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d, ok := o.secrets[name]; ok {
		return maps.Clone(d), nil
	}
	return nil, fmt.Errorf("Secret %q not found", name)
}

func (o objects) ClaimDir(_ context.Context, name string) (string, error) {
	if d, ok := o.claims[name]; ok {
		return d, nil
	}
	return "", fmt.Errorf("PersistentVolumeClaim %q not found", name)
}

// ServiceAccountToken fails: the composed pods mount no service account token
// (automountServiceAccountToken: false); one that did would fail to start.
func (o objects) ServiceAccountToken(context.Context, string, int64) ([]byte, error) {
	return nil, fmt.Errorf("no service account token in the function's pod tests")
}

// composePod runs the function for spec with a random password and returns
// the pod its StatefulSet makes, with the composed ConfigMap and Secret and a
// fresh volume for each claim.
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
	p := &pod{sts: &appsv1.StatefulSet{}, src: objects{mu: &sync.Mutex{}, configMaps: map[string]map[string][]byte{}, secrets: map[string]map[string][]byte{}, claims: map[string]string{}}}
	for _, r := range rsp.GetDesired().GetResources() {
		u := r.GetResource().AsMap()
		var err error
		switch u["kind"] {
		case "StatefulSet":
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u, p.sts)
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u, cm)
			p.src.configMaps[cm.Name] = map[string][]byte{}
			for k, v := range cm.Data {
				p.src.configMaps[cm.Name][k] = []byte(v)
				if k == confKey {
					p.conf = v
				}
			}
		case "Secret":
			sec := &corev1.Secret{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(u, sec)
			p.src.secrets[sec.Name] = sec.Data
			if v, ok := sec.Data[passwordKey]; ok && strings.HasSuffix(sec.Name, "-auth") {
				p.password = string(v)
			}
		}
		if err != nil {
			t.Fatalf("cannot convert composed %v: %v", u["kind"], err)
		}
	}
	tmpl := p.sts.Spec.Template
	p.spec = &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: *tmpl.Spec.DeepCopy()}
	p.spec.Name = p.sts.Name + "-0"
	for _, vct := range p.sts.Spec.VolumeClaimTemplates {
		claim := vct.Name + "-" + p.spec.Name
		p.src.claims[claim] = t.TempDir()
		p.spec.Spec.Volumes = append(p.spec.Spec.Volumes, corev1.Volume{Name: vct.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}})
	}
	return p
}

// start runs the pod as the local control plane's kubelet stand-in does
// (internal/podrunner: its own network namespace and IP, volumes, init
// containers, the containers' commands) until the test ends.
func (p *pod) start(t *testing.T) *podrunner.Pod {
	t.Helper()
	testenv.Root(t)
	testenv.Binary(t, "redis-server")
	testenv.Binary(t, "redis-cli")
	rp, err := podrunner.Start(context.Background(), p.spec, p.src, podrunner.Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: podrunner.Redis})
	if err != nil {
		t.Fatalf("cannot run the composed pod: %v", err)
	}
	t.Cleanup(rp.Stop)
	p.running = rp
	return rp
}

// run starts the pod and waits until its readiness probe passes; it returns
// the address of its Redis.
func (p *pod) run(t *testing.T) string {
	t.Helper()
	rp := p.start(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := rp.Ready(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(rp.Log(p.spec.Spec.Containers[0].Name))
			t.Fatalf("the composed pod did not become ready: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return net.JoinHostPort(rp.IP, strconv.Itoa(int(p.spec.Spec.Containers[0].Ports[0].ContainerPort)))
}

func TestComposedRedisRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	p := composePod(t, `{"memory": "256Mi", "maxmemoryPolicy": "volatile-lru",
		"persistence": {"rdb": true, "appendOnly": true}, "config": {"timeout": "300", "notify-keyspace-events": "Ex"}}`)
	addr := p.run(t)
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
			c := redis.NewClient(&redis.Options{Addr: addr, Password: tc.password, MaxRetries: -1, DisableIdentity: true})
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

	c := redis.NewClient(&redis.Options{Addr: addr, Password: p.password, DisableIdentity: true})
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
	c := redis.NewClient(&redis.Options{Addr: p.run(t), Password: p.password, DisableIdentity: true})
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

func TestProbesAuthenticate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	type want struct{ ok bool }
	cases := map[string]struct {
		reason string
		// change makes the pod's probe environment (or Redis) what the
		// case needs; the server keeps the Secret's password.
		change func(p *pod)
		down   bool
		want   want
	}{
		"Healthy": {
			reason: "With Redis up and the Secret's password, the probe should pass.",
			change: func(*pod) {},
			want:   want{ok: true},
		},
		"WrongPassword": {
			reason: "With a wrong password the probe should fail, though redis-cli itself exits 0.",
			change: func(p *pod) {
				for _, s := range p.src.secrets {
					if _, ok := s[passwordKey]; ok {
						s[passwordKey] = []byte("wrong-password")
					}
				}
			},
			want: want{ok: false},
		},
		"NoPassword": {
			reason: "Without a password the probe should fail (NOAUTH).",
			change: func(p *pod) { p.spec.Spec.Containers[0].Env = nil },
			want:   want{ok: false},
		},
		"RedisDown": {
			reason: "With nothing listening the probe should fail.",
			change: func(p *pod) {
				p.spec.Spec.Containers[0].Command, p.spec.Spec.Containers[0].Args = []string{"sleep", "600"}, nil
			},
			down: true,
			want: want{ok: false},
		},
	}
	for name, tc := range cases {
		for _, probe := range []string{"readiness", "liveness"} {
			t.Run(name+"/"+probe, func(t *testing.T) {
				p := composePod(t, `{"memory": "64Mi"}`)
				password := p.password
				tc.change(p)
				c := &p.spec.Spec.Containers[0]
				if probe == "liveness" {
					// The runner runs readiness probes: run the liveness
					// probe in its place.
					c.ReadinessProbe = c.LivenessProbe
				}
				rp := p.start(t)
				ctx := context.Background()
				if !tc.down {
					// Probe only once Redis serves, so a failure is the probe's.
					rc := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(rp.IP, "6379"), Password: password, MaxRetries: -1, DisableIdentity: true})
					defer rc.Close()
					testenv.Eventually(t, 2*time.Minute, "Redis answers PING", func() error { return rc.Ping(ctx).Err() })
				}
				var err error
				for range 20 {
					if err = rp.Ready(ctx); err == nil || !tc.want.ok {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if diff := cmp.Diff(tc.want, want{ok: err == nil}, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("%s\n%s probe (%v): -want, +got:\n%s", tc.reason, probe, err, diff)
				}
			})
		}
	}
}
