package podrunner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// fakeSource serves ConfigMaps, Secrets and claim directories from maps.
type fakeSource struct {
	configMaps map[string]map[string][]byte
	secrets    map[string]map[string][]byte
	claims     map[string]string
	token      string
}

var errNotFound = errors.New("not found")

func (s fakeSource) ConfigMap(_ context.Context, name string) (map[string][]byte, error) {
	if d, ok := s.configMaps[name]; ok {
		return d, nil
	}
	return nil, errNotFound
}

func (s fakeSource) Secret(_ context.Context, name string) (map[string][]byte, error) {
	if d, ok := s.secrets[name]; ok {
		return d, nil
	}
	return nil, errNotFound
}

func (s fakeSource) ClaimDir(_ context.Context, name string) (string, error) {
	if d, ok := s.claims[name]; ok {
		return d, nil
	}
	return "", errNotFound
}

func (s fakeSource) ServiceAccountToken(_ context.Context, audience string, _ int64) ([]byte, error) {
	if s.token == "" {
		return nil, errNotFound
	}
	return []byte(s.token + "@" + audience), nil
}

func secretRef(name, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

func TestEnv(t *testing.T) {
	src := fakeSource{
		secrets:    map[string]map[string][]byte{"auth": {"password": []byte("s3cret")}},
		configMaps: map[string]map[string][]byte{"cfg": {"level": []byte("debug")}},
	}
	type want struct {
		env map[string]string
		err bool
	}
	cases := map[string]struct {
		reason string
		ctr    corev1.Container
		want   want
	}{
		"ValuesAndRefs": {
			reason: "Values, $(VAR) references to earlier variables and Secret and ConfigMap keys should resolve as the kubelet does.",
			ctr: corev1.Container{Env: []corev1.EnvVar{
				{Name: "PW", ValueFrom: secretRef("auth", "password")},
				{Name: "LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "level"}}},
				{Name: "URL", Value: "redis://:$(PW)@host"},
			}},
			want: want{env: map[string]string{"PW": "s3cret", "LEVEL": "debug", "URL": "redis://:s3cret@host"}},
		},
		"MissingSecret": {
			reason: "A Secret that does not exist should fail the start (the kubelet reports CreateContainerConfigError).",
			ctr:    corev1.Container{Env: []corev1.EnvVar{{Name: "PW", ValueFrom: secretRef("nope", "password")}}},
			want:   want{err: true},
		},
		"MissingKey": {
			reason: "A Secret without the key should fail the start.",
			ctr:    corev1.Container{Env: []corev1.EnvVar{{Name: "PW", ValueFrom: secretRef("auth", "nope")}}},
			want:   want{err: true},
		},
		"OptionalMissing": {
			reason: "An optional reference to a missing Secret should leave the variable unset.",
			ctr: corev1.Container{Env: []corev1.EnvVar{{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "password", Optional: new(true),
			}}}}},
			want: want{env: map[string]string{}},
		},
		"FieldRef": {
			reason: "The downward API's pod fields should resolve from the pod.",
			ctr: corev1.Container{Env: []corev1.EnvVar{
				{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "ROLE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['role']"}}},
			}},
			want: want{env: map[string]string{"NAME": "cache-redis-0", "NS": "team-a", "IP": "198.19.0.7", "ROLE": "master"}},
		},
		"ResourceFieldRefUnsupported": {
			reason: "Resource fields are not supported: nothing here uses them, so they fail loudly rather than run with an empty value.",
			ctr:    corev1.Container{Env: []corev1.EnvVar{{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}}}},
			want:   want{err: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "cache-redis-0", Namespace: "team-a", Labels: map[string]string{"role": "master"}}, Status: corev1.PodStatus{PodIP: "198.19.0.7"}}
			got, err := env(context.Background(), src, pod, &tc.ctr)
			if diff := cmp.Diff(tc.want, want{env: got, err: err != nil}, cmp.AllowUnexported(want{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s\nenv(...): -want, +got (error %v):\n%s", tc.reason, err, diff)
			}
		})
	}
}

// redisPod is a pod like the ones the function composes: an init container
// preparing the data volume, then a sh start script running redis-server with
// a redis.conf from a ConfigMap that includes a password file from a Secret,
// and an exec readiness probe authenticating with a password from the Secret.
func redisPod(conf string) (*corev1.Pod, fakeSource) {
	script := `echo "$(date) starting" >> /data/starts && exec redis-server /etc/redis/redis.conf`
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](5),
		InitContainers: []corev1.Container{{
			Name: "init", Image: "redis:7.0", Command: []string{"sh", "-c", "echo prepared > /data/init && echo initialised > /dev/termination-log"},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		}},
		Containers: []corev1.Container{{
			Name: "redis", Image: "redis:7.0", Command: []string{"sh", "-c", script},
			Env: []corev1.EnvVar{{Name: "REDISCLI_AUTH", ValueFrom: secretRef("auth", "password")}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
				"sh", "-c", `[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)" = PONG ]`,
			}}}},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "data", MountPath: "/data"},
				{Name: "config", MountPath: "/etc/redis"},
				{Name: "auth", MountPath: "/etc/redis-auth"},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-0"}}},
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "auth", Items: []corev1.KeyToPath{{Key: "auth.conf", Path: "auth.conf"}}}}},
		},
	}}
	pod.Name = "cache-redis-0"
	src := fakeSource{
		configMaps: map[string]map[string][]byte{"cfg": {"redis.conf": []byte(conf)}},
		secrets:    map[string]map[string][]byte{"auth": {"password": []byte("s3cret"), "auth.conf": []byte("requirepass s3cret\n")}},
		claims:     map[string]string{},
	}
	return pod, src
}

const goodConf = "port 6379\nbind * -::*\ndir /data\nappendonly yes\ninclude /etc/redis-auth/auth.conf\n"

func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, what, fn)
}

func TestStartRedisPod(t *testing.T) {
	if testing.Short() {
		t.Skip("runs redis-server in a network namespace")
	}
	testenv.Root(t)
	testenv.Binary(t, "redis-server")
	ctx := context.Background()
	pod, src := redisPod(goodConf)
	src.claims["data-0"] = t.TempDir()
	p, err := Start(ctx, pod, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
	if err != nil {
		t.Fatalf("Start(...): %v", err)
	}
	defer p.Stop()

	eventually(t, 2*time.Minute, "the readiness probe passes", func() error { return p.Ready(ctx) })
	rc := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(p.IP, "6379"), Password: "s3cret", MaxRetries: -1, DisableIdentity: true})
	defer rc.Close()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("The pod's Redis should answer at the pod IP with the Secret's password: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(src.claims["data-0"], "init")); err != nil || string(b) != "prepared\n" {
		t.Errorf("The init container should have run to completion on the claim's volume before the container: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(src.claims["data-0"], "appendonlydir")); err != nil {
		t.Errorf("redis.conf's dir /data should be the claim's volume: %v", err)
	}
	if term := p.Status().Inits["init"]; term.ExitCode != 0 || term.Message != "initialised\n" {
		t.Errorf("The init container's termination should be reported with its message, as a kubelet reports it: %+v", term)
	}

	// The process dies: the pod is not ready until it was restarted.
	if err := rc.Do(ctx, "SHUTDOWN", "NOSAVE").Err(); err != nil && !strings.Contains(err.Error(), "EOF") && !errors.Is(err, net.ErrClosed) {
		t.Logf("SHUTDOWN: %v", err)
	}
	eventually(t, 2*time.Minute, "the pod is not ready while Redis is down", func() error {
		if p.Ready(ctx) == nil {
			return errors.New("still ready")
		}
		return nil
	})
	eventually(t, 2*time.Minute, "the container is restarted and ready again", func() error { return p.Ready(ctx) })
	if diff := cmp.Diff(map[string]int32{"redis": 1}, p.Restarts()); diff != "" {
		t.Errorf("The container should count one restart.\nRestarts(): -want, +got:\n%s", diff)
	}
	if v, err := rc.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("The key written before the restart should be on the claim's volume (AOF): %q, %v", v, err)
	}
	p.Stop()
	gone := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(p.IP, "6379"), Password: "s3cret", MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, DisableIdentity: true})
	defer gone.Close()
	if err := gone.Ping(ctx).Err(); err == nil {
		t.Error("Redis should not answer at the pod IP after Stop")
	}
	if _, err := os.Stat("/run/netns/" + netnsName(net.ParseIP(p.IP))); err == nil {
		t.Error("The pod's network namespace should be gone after Stop")
	}
}

func TestStartFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes in a network namespace")
	}
	testenv.Root(t)
	testenv.Binary(t, "redis-server")
	ctx := context.Background()

	t.Run("BadConfigNeverReady", func(t *testing.T) {
		pod, src := redisPod(goodConf + "maxmemory 256Mi\n")
		src.claims["data-0"] = t.TempDir()
		p, err := Start(ctx, pod, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
		if err != nil {
			t.Fatalf("Start(...): %v", err)
		}
		defer p.Stop()
		time.Sleep(2 * time.Second)
		if err := p.Ready(ctx); err == nil || !strings.Contains(err.Error(), "not running") {
			t.Errorf("A Redis that refuses its config should keep the pod not ready, naming the container: %v", err)
		}
	})
	t.Run("InitContainerFails", func(t *testing.T) {
		pod, src := redisPod(goodConf)
		src.claims["data-0"] = t.TempDir()
		pod.Spec.InitContainers[0].Command = []string{"sh", "-c", "echo no space >&2; exit 3"}
		_, err := Start(ctx, pod, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
		if err == nil || !strings.Contains(err.Error(), `init container "init" exited 3: `) || !strings.Contains(err.Error(), "no space") {
			t.Errorf("A failing init container should fail the start with its exit code and output: %v", err)
		}
	})
	t.Run("ClaimNotBound", func(t *testing.T) {
		pod, src := redisPod(goodConf)
		_, err := Start(ctx, pod, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
		if !errors.Is(err, errNotFound) {
			t.Errorf("A claim without a volume should fail the start: %v", err)
		}
	})
	t.Run("NotRunnable", func(t *testing.T) {
		pod, src := redisPod(goodConf)
		pod.Spec.Containers[0].Image = "127.0.0.1:5000/org/provider-redishttp:v1"
		_, err := Start(ctx, pod, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
		if !errors.Is(err, ErrNotRunnable) {
			t.Errorf("A pod with an image the resolver cannot run should say so: %v", err)
		}
	})
}

// TestHelperHTTPServer is not a test: TestHTTPProbe runs the test binary as
// a pod's program that serves /readyz once the file $READY exists.
func TestHelperHTTPServer(t *testing.T) {
	if os.Getenv("PODRUNNER_HELPER") != "1" {
		t.Skip("helper process")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(os.Getenv("READY")); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: time.Second}
	_ = srv.ListenAndServe()
	os.Exit(1)
}

func TestHTTPProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a process in a network namespace")
	}
	testenv.Root(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// An image of ours: the test binary stands in for the gateway's.
	resolve := func(_ context.Context, image string, _, args []string) ([]string, error) {
		if image != "gateway" {
			return nil, ErrNotRunnable
		}
		return append([]string{self, "-test.run=^TestHelperHTTPServer$"}, args...), nil
	}
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "gateway", Image: "gateway",
		Env:   []corev1.EnvVar{{Name: "PODRUNNER_HELPER", Value: "1"}, {Name: "READY", Value: ready}},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/readyz", Port: intstr.FromString("http"),
		}}},
	}}}}
	p, err := Start(context.Background(), pod, fakeSource{}, Options{Dir: dir, IP: testenv.PodIP(t), Resolve: resolve})
	if err != nil {
		t.Fatalf("Start(...): %v", err)
	}
	defer p.Stop()
	ctx := context.Background()
	// Serving but answering 503: not ready.
	eventually(t, 2*time.Minute, "the server answers 503", func() error {
		err := p.Ready(ctx)
		if err != nil && strings.Contains(err.Error(), "answered 503") {
			return nil
		}
		return fmt.Errorf("want a 503, got %w", err)
	})
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the httpGet probe passes once /readyz answers 200", func() error { return p.Ready(ctx) })
}

func TestServiceAccountVolume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a process in a network namespace")
	}
	testenv.Root(t)
	// What the API server's ServiceAccount admission adds to a pod.
	sa := "/var/run/secrets/kubernetes.io/serviceaccount"
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "app", Image: "redis",
			// The script names no mount point, so only a mount at the real
			// path can serve it (as client-go's in-cluster config reads it).
			Command: []string{"sh", "-c", `cd /var/run/secrets/kubernetes.io && cat serviceaccount/token serviceaccount/namespace serviceaccount/ca.crt > /out/sa; sleep 600`},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "out", MountPath: "/out"},
				{Name: "kube-api-access", MountPath: sa, ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			}}}},
		},
	}}
	pod.Name, pod.Namespace = "coordinator", "team-a"
	src := fakeSource{token: "tok", configMaps: map[string]map[string][]byte{"kube-root-ca.crt": {"ca.crt": []byte("CA")}}}
	dir := t.TempDir()
	p, err := Start(context.Background(), pod, src, Options{Dir: dir, IP: testenv.PodIP(t), Resolve: Redis})
	if err != nil {
		t.Fatalf("Start(...): %v", err)
	}
	defer p.Stop()
	eventually(t, 2*time.Minute, "the container reads its service account at the real path", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "volumes", "out", "sa"))
		if diff := cmp.Diff("tok@team-aCA", string(b)); diff != "" {
			log, _ := os.ReadFile(p.Log("app"))
			return fmt.Errorf("token, namespace, ca.crt: -want, +got:\n%s (%w)\n%s", diff, err, log)
		}
		return nil
	})
	if b, _ := os.ReadFile(filepath.Join(sa, "token")); len(b) > 0 {
		t.Error("The bind mount should stay in the container's mount namespace, not show on the machine")
	}
}
