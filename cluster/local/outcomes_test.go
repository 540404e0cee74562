package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestPodOutcomes: what a kubelet reports of pods that end, as the
// controllers and the function read it: a Job's pod that fails or succeeds
// (the job controller then marks the Job), and an init container that fails
// before it succeeds (CrashLoopBackOff with its termination message while
// it fails, then Initialized and Ready).
func TestPodOutcomes(t *testing.T) {
	c := startKube(t)
	ctx := context.Background()
	const ns = "outcomes"
	if err := c.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	job := func(name, script string) *batchv1.Job {
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "run", Image: "redis:7.0", Command: []string{"sh", "-c", script}}},
			}}},
		}
	}
	cases := map[string]struct {
		reason  string
		job     string
		script  string
		want    batchv1.JobConditionType
		phase   corev1.PodPhase
		code    int32
		message string
	}{
		"Fails": {
			reason: "A Job whose container exits 3 fails: the pod Failed with its exit code and termination message.",
			job:    "fails",
			script: `printf '{"reason":"CredentialsRefused"}' > /dev/termination-log; exit 3`,
			want:   batchv1.JobFailed, phase: corev1.PodFailed, code: 3, message: `{"reason":"CredentialsRefused"}`,
		},
		"Succeeds": {
			reason: "A Job whose container exits 0 completes: the pod Succeeded with its termination message.",
			job:    "succeeds",
			script: `sleep 1; printf done > /dev/termination-log`,
			want:   batchv1.JobComplete, phase: corev1.PodSucceeded, code: 0, message: "done",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			j := job(tc.job, tc.script)
			if err := c.Client.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 2*time.Minute, "the Job finished", func() error {
				if err := c.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: j.Name}, j); err != nil {
					return err
				}
				for _, cd := range j.Status.Conditions {
					if (cd.Type == batchv1.JobComplete || cd.Type == batchv1.JobFailed) && cd.Status == corev1.ConditionTrue {
						return nil
					}
				}
				return errors.New("not yet")
			})
			pods := &corev1.PodList{}
			if err := c.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: j.Name}); err != nil || len(pods.Items) != 1 {
				t.Fatalf("the Job's pod: %d, %v", len(pods.Items), err)
			}
			p := pods.Items[0]
			var got []any
			for _, cd := range j.Status.Conditions {
				if cd.Status == corev1.ConditionTrue && (cd.Type == batchv1.JobComplete || cd.Type == batchv1.JobFailed) {
					got = append(got, cd.Type)
				}
			}
			got = append(got, p.Status.Phase)
			if term := p.Status.ContainerStatuses[0].State.Terminated; term != nil {
				got = append(got, term.ExitCode, term.Message)
			}
			want := []any{tc.want, tc.phase, tc.code, tc.message}
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Errorf("%s\nJob condition, pod phase, exit code, message: want %v, got %v", tc.reason, want, got)
			}
		})
	}

	t.Run("InitContainerFailsThenSucceeds", func(t *testing.T) {
		// Not an emptyDir (the runner recreates it for every attempt): a
		// directory of this machine counts the runs.
		runs := filepath.Join(t.TempDir(), "runs")
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "init-twice", Namespace: ns},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "restore", Image: "redis:7.0", Command: []string{"sh", "-c",
					`n=$(cat ` + runs + ` 2>/dev/null || echo 0); echo $((n+1)) > ` + runs + `; [ "$n" -ge 3 ] || { printf "run $n failed" > /dev/termination-log; exit 1; }`}}},
				Containers: []corev1.Container{{Name: "main", Image: "redis:7.0", Command: []string{"sh", "-c", "sleep 600"}}},
			},
		}
		if err := c.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		failing := waitPod(t, c, ns, pod.Name, func(p *corev1.Pod) bool {
			ics := p.Status.InitContainerStatuses
			return len(ics) == 1 && ics[0].State.Waiting != nil && ics[0].State.Waiting.Reason == "CrashLoopBackOff" && ics[0].LastTerminationState.Terminated != nil
		})
		if last := failing.Status.InitContainerStatuses[0].LastTerminationState.Terminated; last.ExitCode != 1 || last.Message[:4] != "run " || podReady(failing) {
			t.Errorf("While the init container fails it backs off with its last run's exit code and termination message, the pod not Ready: %+v, Ready %t", last, podReady(failing))
		}
		if cs := failing.Status.ContainerStatuses[0]; cs.State.Running != nil {
			t.Errorf("The main container must not be running while the init container fails: %+v", cs.State)
		}
		ready := waitPod(t, c, ns, pod.Name, podReady)
		initialized := false
		for _, cd := range ready.Status.Conditions {
			initialized = initialized || (cd.Type == corev1.PodInitialized && cd.Status == corev1.ConditionTrue)
		}
		if term := ready.Status.InitContainerStatuses[0].State.Terminated; !initialized || term == nil || term.ExitCode != 0 {
			t.Errorf("Once the init container succeeded the pod is Initialized and the init container Completed: Initialized %t, %+v", initialized, ready.Status.InitContainerStatuses[0].State)
		}
	})
}
