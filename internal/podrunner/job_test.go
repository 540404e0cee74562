package podrunner

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestRunToCompletion runs pods the way a Job's pods run: containers that
// exit are restarted or not as the restart policy says, and each run's exit
// code and termination message are reported, as a kubelet reports them to
// the Job controller and to whoever reads the pod's status.
func TestRunToCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes in a network namespace")
	}
	testenv.Root(t)
	testenv.Binary(t, "redis-server")
	ctx := context.Background()
	// The container writes its result where Kubernetes reads it, as
	// cmd/backup does.
	script := func(msg string, code string) []string {
		return []string{"sh", "-c", "printf '" + msg + "' > /dev/termination-log; echo ran >> /data/runs; exit " + code}
	}
	pod := func(policy corev1.RestartPolicy, cmd []string) (*corev1.Pod, fakeSource, string) {
		data := t.TempDir()
		p := &corev1.Pod{Spec: corev1.PodSpec{
			RestartPolicy: policy,
			Containers: []corev1.Container{{
				Name: "job", Image: "redis:7.0", Command: cmd,
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		}}
		p.Name = "job-pod"
		return p, fakeSource{claims: map[string]string{"data": data}}, data
	}
	before, _ := os.ReadFile(defaultTerminationMessagePath)

	cases := map[string]struct {
		reason  string
		policy  corev1.RestartPolicy
		cmd     []string
		phase   corev1.PodPhase
		code    int
		message string
	}{
		"NeverFailed": {
			reason: "With restartPolicy Never a failed container is not restarted: the pod failed, with its exit code and message.",
			policy: corev1.RestartPolicyNever, cmd: script(`{"reason":"CredentialsRefused"}`, "3"),
			phase: corev1.PodFailed, code: 3, message: `{"reason":"CredentialsRefused"}`,
		},
		"NeverSucceeded": {
			reason: "With restartPolicy Never a container that exits 0 makes the pod Succeeded.",
			policy: corev1.RestartPolicyNever, cmd: script(`{"name":"b1"}`, "0"),
			phase: corev1.PodSucceeded, code: 0, message: `{"name":"b1"}`,
		},
		"OnFailureSucceeded": {
			reason: "With restartPolicy OnFailure a container that exits 0 is not restarted.",
			policy: corev1.RestartPolicyOnFailure, cmd: script("ok", "0"),
			phase: corev1.PodSucceeded, code: 0, message: "ok",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p0, src, data := pod(tc.policy, tc.cmd)
			p, err := Start(ctx, p0, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
			if err != nil {
				t.Fatalf("Start(...): %v", err)
			}
			defer p.Stop()
			var s Status
			eventually(t, 2*time.Minute, "the pod finished", func() error {
				if s = p.Status(); s.Phase == "" {
					return errors.New("still running")
				}
				return nil
			})
			time.Sleep(1500 * time.Millisecond) // Longer than the first back-off: a restart would show.
			s = p.Status()
			if s.Phase != tc.phase {
				t.Errorf("%s\nPhase: want %q, got %q", tc.reason, tc.phase, s.Phase)
			}
			c := s.Containers[0]
			if !c.Finished || c.LastTermination == nil || c.RestartCount != 0 {
				t.Fatalf("%s\nThe container should have finished once, not restarted: %+v", tc.reason, c)
			}
			if diff := cmp.Diff([]any{tc.code, tc.message}, []any{c.LastTermination.ExitCode, c.LastTermination.Message}); diff != "" {
				t.Errorf("%s\nexit code and termination message: -want, +got:\n%s", tc.reason, diff)
			}
			if b, _ := os.ReadFile(data + "/runs"); string(b) != "ran\n" {
				t.Errorf("%s\nThe container should have run exactly once, ran %q", tc.reason, b)
			}
		})
	}

	t.Run("AlwaysRestartsAndKeepsTheLastRun", func(t *testing.T) {
		p0, src, _ := pod(corev1.RestartPolicyAlways, script("crashed", "2"))
		p, err := Start(ctx, p0, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
		if err != nil {
			t.Fatalf("Start(...): %v", err)
		}
		defer p.Stop()
		eventually(t, 2*time.Minute, "the container was restarted", func() error {
			if p.Status().Containers[0].RestartCount == 0 {
				return errors.New("not restarted yet")
			}
			return nil
		})
		s := p.Status()
		if c := s.Containers[0]; s.Phase != "" || c.Finished || c.LastTermination == nil || c.LastTermination.ExitCode != 2 || c.LastTermination.Message != "crashed" {
			t.Errorf("With restartPolicy Always the pod keeps running and the last run's end is reported: phase %q, %+v, %+v", s.Phase, c, c.LastTermination)
		}
	})

	t.Run("InitContainerTerminationMessage", func(t *testing.T) {
		p0, src, _ := pod(corev1.RestartPolicyAlways, []string{"sleep", "600"})
		p0.Spec.InitContainers = []corev1.Container{{
			Name: "restore", Image: "redis:7.0", Command: script(`{"reason":"BackupCorrupt"}`, "1"),
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		}}
		_, err := Start(ctx, p0, src, Options{Dir: t.TempDir(), IP: testenv.PodIP(t), Resolve: Redis})
		ie, ok := errors.AsType[*InitError](err)
		if !ok {
			t.Fatalf("A failing init container should fail the start with an *InitError: %v", err)
		}
		if diff := cmp.Diff([]any{"restore", 1, `{"reason":"BackupCorrupt"}`}, []any{ie.Container, ie.ExitCode, ie.Message}); diff != "" {
			t.Errorf("The init container's name, exit code and termination message: -want, +got:\n%s", diff)
		}
	})

	// Every container wrote its own file: the machine's path stays as it
	// was (an empty mount point, if the runner made it).
	if after, _ := os.ReadFile(defaultTerminationMessagePath); string(after) != string(before) {
		t.Errorf("The containers wrote the machine's %s (%q): each should write its own file", defaultTerminationMessagePath, after)
	}
}
