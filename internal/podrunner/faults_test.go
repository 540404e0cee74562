package podrunner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// pingProbe passes when the pod's Redis answers PONG.
func pingProbe(period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
			"sh", "-c", `[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)" = PONG ]`,
		}}},
		PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 1,
	}
}

// startPod runs pod until the test ends, calling OnChange into a channel.
func startPod(t *testing.T, pod *corev1.Pod, o Options) (*Pod, <-chan struct{}) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs processes in a network namespace")
	}
	testenv.Root(t)
	testenv.Binary(t, "redis-server")
	changed := make(chan struct{}, 1)
	o.OnChange = func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.IP == "" {
		o.IP = testenv.PodIP(t)
	}
	if o.Resolve == nil {
		o.Resolve = Redis
	}
	p, err := Start(context.Background(), pod, fakeSource{}, o)
	if err != nil {
		t.Fatalf("Start(...): %v", err)
	}
	t.Cleanup(p.Stop)
	return p, changed
}

// waitStatus waits until the pod's Status, as its probes decided it,
// satisfies ok, and returns how long that took.
func waitStatus(t *testing.T, p *Pod, what string, ok func(Status) bool) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, 2*time.Minute, what, func() error {
		if s := p.Status(); !ok(s) {
			return fmt.Errorf("status: %+v", s)
		}
		return nil
	})
	return time.Since(start)
}

func ready(s Status) bool    { return s.Ready }
func notReady(s Status) bool { return !s.Ready }

func redisOnly(probe *corev1.Probe) *corev1.Pod {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](2),
		Containers: []corev1.Container{{
			Name: "redis", Image: "redis:7.0", Args: []string{"--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"},
			ReadinessProbe: probe,
		}},
	}}
	pod.Name, pod.Namespace = "cache-redis-0", "team-a"
	return pod
}

// ping asks the Redis at addr for PONG from this machine, giving up after a
// second.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	b := make([]byte, 7)
	if _, err := conn.Read(b); err != nil {
		return err
	}
	if string(b) != "+PONG\r\n" {
		return fmt.Errorf("got %q", b)
	}
	return nil
}

func TestKillRestartsAndCounts(t *testing.T) {
	// The script does not exec: redis-server is a child of the container's
	// main process, which is what gets SIGKILL.
	pod := redisOnly(pingProbe(1, 1))
	pod.Spec.Containers[0].Command = []string{"sh", "-c", "redis-server --port 6379 --protected-mode no --save '' --appendonly no & wait"}
	pod.Spec.Containers[0].Args = nil
	p, _ := startPod(t, pod, Options{})
	waitStatus(t, p, "the pod turns ready", ready)

	if err := p.Kill("redis"); err != nil {
		t.Fatalf("Kill(redis): %v", err)
	}
	if err := p.Kill("nope"); err == nil {
		t.Error("Kill of a container the pod does not have should fail")
	}
	waitStatus(t, p, "the killed container is restarted, counted, and ready again", func(s Status) bool {
		return s.Ready && s.Containers[0].RestartCount == 1
	})
	// Had the killed shell's redis-server child survived, the restarted one
	// could not bind the port and the pod would never turn ready again.
	if err := ping(net.JoinHostPort(p.IP, "6379")); err != nil {
		t.Errorf("The restarted container's Redis should answer: %v", err)
	}
	if diff := cmp.Diff(map[string]int32{"redis": 1}, p.Restarts()); diff != "" {
		t.Errorf("Restarts(): -want, +got:\n%s", diff)
	}
}

func TestFreezeAndThaw(t *testing.T) {
	p, changed := startPod(t, redisOnly(pingProbe(1, 2)), Options{})
	waitStatus(t, p, "the pod turns ready", ready)
	for len(changed) > 0 {
		<-changed
	}
	if err := p.Freeze(); err != nil {
		t.Fatalf("Freeze(): %v", err)
	}
	frozen := time.Now()
	took := waitStatus(t, p, "a frozen pod goes unready (failureThreshold 2, periodSeconds 1)", notReady)
	t.Logf("freeze -> unready: %s (periodSeconds 1, failureThreshold 2, timeoutSeconds 1)", took.Round(10*time.Millisecond))
	select {
	case <-changed:
	default:
		t.Error("OnChange should have been called when the pod went unready")
	}
	if err := ping(net.JoinHostPort(p.IP, "6379")); err == nil {
		t.Error("A frozen pod's Redis should not answer")
	}
	if s := p.Status(); !s.Containers[0].Running || s.Containers[0].RestartCount != 0 {
		t.Errorf("A frozen container is still running and was not restarted: %+v", s)
	}
	if err := p.Thaw(); err != nil {
		t.Fatalf("Thaw(): %v", err)
	}
	waitStatus(t, p, "a thawed pod turns ready again", ready)
	if err := ping(net.JoinHostPort(p.IP, "6379")); err != nil {
		t.Errorf("A thawed pod's Redis should answer: %v", err)
	}
	_ = frozen
}

func TestCutNetwork(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil && !testenv.Required() {
		t.Skip("needs nft (hack/deps.sh)")
	}
	p, _ := startPod(t, redisOnly(pingProbe(1, 1)), Options{})
	client, _ := startPod(t, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "client", Image: "redis", Command: []string{"sleep", "600"},
	}}}}, Options{})
	waitStatus(t, p, "the pod turns ready", ready)
	addr := net.JoinHostPort(p.IP, "6379")
	fromClient := func() error {
		out, err := exec.CommandContext(context.Background(), "ip", "netns", "exec", client.net.ns, "timeout", "2", "redis-cli", "-h", p.IP, "ping").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "PONG" {
			return fmt.Errorf("redis-cli from another pod: %q, %w", out, err)
		}
		return nil
	}
	if err := errors.Join(ping(addr), fromClient()); err != nil {
		t.Fatalf("Before the cut the pod should answer the host and another pod: %v", err)
	}

	if err := p.CutNetwork(); err != nil {
		t.Fatalf("CutNetwork(): %v", err)
	}
	var ne net.Error
	if err := ping(addr); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("A cut pod should be silent to the host (a timeout, not a refusal): %v", err)
	}
	if err := fromClient(); err == nil {
		t.Error("A cut pod should not answer another pod")
	}
	if out, err := p.Exec(context.Background(), "redis", "redis-cli", "-h", "127.0.0.1", "ping"); err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Errorf("A cut pod's loopback (what its exec probes use) should still work: %q, %v", out, err)
	}
	if err := p.CutNetwork(); err == nil {
		t.Error("Cutting a cut pod again should fail rather than stack rules")
	}

	if err := p.RestoreNetwork(); err != nil {
		t.Fatalf("RestoreNetwork(): %v", err)
	}
	eventually(t, 2*time.Minute, "a restored pod answers the host and another pod", func() error {
		return errors.Join(ping(addr), fromClient())
	})
}

func TestPreStopBeforeTerm(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "volumes", "out", "log")
	cases := map[string]struct {
		reason  string
		script  string
		preStop string
		grace   int64
		want    string
	}{
		"HookThenTerm": {
			reason:  "The preStop hook runs to completion before the container gets SIGTERM.",
			script:  `trap 'echo term >> /out/log; exit 0' TERM; echo started >> /out/log; while :; do sleep 0.1; done`,
			preStop: "sleep 0.5; echo preStop >> /out/log",
			grace:   10,
			want:    "started\npreStop\nterm\n",
		},
		"GraceHonoured": {
			reason:  "A container that ignores SIGTERM is killed once the grace period (hook included, plus 2 s for an overrunning hook) is over; the hook's own overrun is cut short.",
			script:  `trap '' TERM; echo started >> /out/log; while :; do sleep 0.1; done`,
			preStop: "sleep 60; echo preStop >> /out/log",
			grace:   1,
			want:    "started\n",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_ = os.RemoveAll(filepath.Dir(log))
			pod := &corev1.Pod{Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(tc.grace),
				Containers: []corev1.Container{{
					Name: "app", Image: "redis", Command: []string{"sh", "-c", tc.script},
					Lifecycle:    &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", tc.preStop}}}},
					VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}},
				}},
				Volumes: []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			}}
			p, _ := startPod(t, pod, Options{Dir: dir})
			eventually(t, 2*time.Minute, "the container started", func() error {
				b, _ := os.ReadFile(log)
				if string(b) != "started\n" {
					return fmt.Errorf("log: %q", b)
				}
				return nil
			})
			p.Stop()
			if s := p.Status(); s.Containers[0].Running {
				t.Errorf("The container should not run after Stop: %+v", s)
			}
			b, _ := os.ReadFile(log)
			if diff := cmp.Diff(tc.want, string(b)); diff != "" {
				t.Errorf("%s\nStop(): -want, +got container log:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestLivenessRestarts(t *testing.T) {
	dir := t.TempDir()
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers: []corev1.Container{{
			Name: "app", Image: "redis", Command: []string{"sleep", "600"},
			LivenessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "!", "-e", "/out/sick"}}},
				// A generous timeout: a busy machine must not fail it.
				PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 10,
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}},
		}},
		Volumes: []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}}
	p, _ := startPod(t, pod, Options{Dir: dir})
	waitStatus(t, p, "the container runs", ready)
	time.Sleep(3 * time.Second)
	if s := p.Status(); s.Containers[0].RestartCount != 0 {
		t.Fatalf("A container passing its liveness probe should not be restarted: %+v", s)
	}
	if err := os.WriteFile(filepath.Join(dir, "volumes", "out", "sick"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p, "a container failing its liveness probe is restarted", func(s Status) bool { return s.Containers[0].RestartCount >= 1 })
}

func TestPodNames(t *testing.T) {
	dir := t.TempDir()
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Hostname: "cache-redis-1", Subdomain: "cache-redis-headless",
		Containers: []corev1.Container{{
			Name: "app", Image: "redis", Command: []string{"sh", "-c", `{ hostname; hostname -f; echo "$HOSTNAME"; } > /out/names; sleep 600`},
			VolumeMounts: []corev1.VolumeMount{{Name: "out", MountPath: "/out"}},
		}},
		Volumes: []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}}
	pod.Name, pod.Namespace = "cache-redis-1", "team-a"
	startPod(t, pod, Options{Dir: dir})
	want := "cache-redis-1\ncache-redis-1.cache-redis-headless.team-a.svc.cluster.local\ncache-redis-1\n"
	eventually(t, 2*time.Minute, "the pod knows its names", func() error {
		b, _ := os.ReadFile(filepath.Join(dir, "volumes", "out", "names"))
		if diff := cmp.Diff(want, string(b)); diff != "" {
			return fmt.Errorf("hostname, hostname -f, $HOSTNAME: -want, +got:\n%s", diff)
		}
		return nil
	})
}
