package local

import (
	"context"
	_ "embed" // The pod-running kwok stage.
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ai-decenter/redishttp/internal/podrunner"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// The pod runner stands in for a kubelet on machines without containers. kwok
// gives each scheduled pod an IP and phase Running (pod-running.yaml, which
// replaces kwok's pod-ready stage); the runner runs the pods whose images can
// run here (Redis with this machine's redis-server; this project's images from
// the local registry, as the static binary inside: internal/podrunner) and
// sets their Ready condition from their readiness probes, as a kubelet would.
// Pods of the local registry it does not run (Crossplane's function and
// provider Deployments, whose processes the control plane runs itself) are
// marked Ready at once, as kwok alone would; pods with images that cannot run
// here (another registry, a typo) never turn Ready, as with a kubelet that
// cannot pull the image.

//go:embed pod-running.yaml
var podRunningStage []byte

// A podWorker runs one pod until its context is cancelled.
type podWorker struct {
	uid    types.UID
	claims []string // the PVCs the pod mounts
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	pod *podrunner.Pod
}

type podRunner struct {
	c       *Cluster
	resolve podrunner.Resolver

	mu      sync.Mutex
	workers map[types.NamespacedName]*podWorker
	ips     ipAllocator
}

func (c *Cluster) startPods(ctx context.Context) {
	r := &podRunner{c: c, workers: map[types.NamespacedName]*podWorker{}, ips: ipAllocator{cidrs: map[string]*net.IPNet{}, next: map[string]uint32{}}}
	// The runtime images of the local registry (not the packages).
	var repos []string
	for _, t := range runtimeImages() {
		repos = append(repos, t.TargetName())
	}
	r.resolve = podrunner.Chain(podrunner.Redis, podrunner.RedisExporter, podrunner.Registry(c.Registry, filepath.Join(c.opts.Dir, "images"), repos...))
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // Runs until Stop, beyond Start.
	done := make(chan struct{})
	c.onStop(func() {
		cancel()
		<-done
		r.mu.Lock()
		ws := maps.Clone(r.workers)
		r.mu.Unlock()
		for _, w := range ws {
			w.cancel()
		}
		for _, w := range ws {
			<-w.done
		}
	})
	c.runner = r
	go func() {
		defer close(done)
		for {
			r.syncOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// claimInUse reports whether a pod the runner runs, or is still stopping,
// mounts the PVC: its volume must outlive the pod's shutdown (Redis saves on
// SIGTERM), as a kubelet keeps a volume mounted until the pod is gone.
func (c *Cluster) claimInUse(namespace, claim string) bool {
	if c.runner == nil {
		return false
	}
	c.runner.mu.Lock()
	defer c.runner.mu.Unlock()
	for k, w := range c.runner.workers {
		if k.Namespace == namespace && slices.Contains(w.claims, claim) {
			return true
		}
	}
	return false
}

// Pod returns the running pod namespace/name, for the faults a test injects
// (Kill, Freeze, CutNetwork...), or an error when the pod runner does not
// run it.
func (c *Cluster) Pod(namespace, name string) (*podrunner.Pod, error) {
	if c.runner == nil {
		return nil, errors.New("the pod runner is off")
	}
	c.runner.mu.Lock()
	w := c.runner.workers[types.NamespacedName{Namespace: namespace, Name: name}]
	c.runner.mu.Unlock()
	if w != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.pod != nil {
			return w.pod, nil
		}
	}
	return nil, errors.Errorf("pod %s/%s is not running", namespace, name)
}

// RunningPods returns the pods the runner runs, as namespace/name.
func (c *Cluster) RunningPods() []string {
	if c.runner == nil {
		return nil
	}
	c.runner.mu.Lock()
	defer c.runner.mu.Unlock()
	out := make([]string, 0, len(c.runner.workers))
	for k, w := range c.runner.workers {
		w.mu.Lock()
		if w.pod != nil {
			out = append(out, k.String())
		}
		w.mu.Unlock()
	}
	sort.Strings(out)
	return out
}

func (r *podRunner) syncOnce(ctx context.Context) {
	pods := &corev1.PodList{}
	if err := r.c.Client.List(ctx, pods); err != nil {
		return
	}
	seen := map[types.NamespacedName]types.UID{}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.assignIPs(ctx, pods.Items)
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !strings.HasPrefix(pod.Spec.NodeName, nodePrefix) || pod.DeletionTimestamp != nil || pod.Status.PodIP == "" ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
		seen[key] = pod.UID
		prev := r.workers[key]
		if prev != nil && prev.uid == pod.UID {
			continue
		}
		if prev != nil {
			// A new pod with the same name (a StatefulSet rolled it): it
			// starts once the old one has stopped, as it shares its volume.
			prev.cancel()
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &podWorker{uid: pod.UID, cancel: cancel, done: make(chan struct{})}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				w.claims = append(w.claims, v.PersistentVolumeClaim.ClaimName)
			}
		}
		r.workers[key] = w
		go r.run(wctx, w, prev, pod.DeepCopy())
	}
	for k, w := range r.workers {
		if uid, ok := seen[k]; !ok || uid != w.uid {
			w.cancel()
			go func(k types.NamespacedName, w *podWorker) {
				<-w.done
				r.mu.Lock()
				defer r.mu.Unlock()
				if r.workers[k] == w {
					delete(r.workers, k)
				}
			}(k, w)
		}
	}
}

// run runs one pod: starts it (retrying with back-off: a volume may not be
// bound yet, an init container may fail), then probes it and keeps its Ready
// condition current until ctx is cancelled, when it stops the pod.
func (r *podRunner) run(ctx context.Context, w *podWorker, prev *podWorker, pod *corev1.Pod) {
	defer close(w.done)
	if prev != nil {
		<-prev.done
	}
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	root := filepath.Join(r.c.opts.Dir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	src := &podSource{c: r.c, namespace: pod.Namespace, pod: pod}
	backoff, lastErr, initFailures := time.Second, "", int32(0)
	changed := make(chan struct{}, 1)
	var p *podrunner.Pod
	for p == nil {
		if err := r.c.recordAddress(pod.Status.PodIP); err != nil {
			r.c.opts.Logf("pod %s: %v", key, err)
			return
		}
		var err error
		p, err = podrunner.Start(ctx, pod, src, podrunner.Options{
			Dir: root, IP: pod.Status.PodIP, Resolve: r.resolve,
			DNS: r.c.podDNS(pod), Env: r.c.kubeletEnv(), ClusterDomain: ClusterDomain,
			OnChange: func() {
				select {
				case changed <- struct{}{}:
				default:
				}
			},
			PidFile: func(ctr string) string { return r.c.pidFile(fmt.Sprintf("pod-%s-%s-%s", pod.Namespace, pod.Name, ctr)) },
		})
		var initErr *podrunner.InitError
		failedInit := errors.As(err, &initErr)
		switch {
		case err == nil:
		case errors.Is(err, podrunner.ErrNotRunnable) && r.simulated(pod):
			r.c.forgetAddress(pod.Status.PodIP)
			// Crossplane's package runtimes, whose processes the control
			// plane runs itself: Ready, as kwok alone would have it.
			for ctx.Err() == nil && r.setStatus(ctx, pod, nil) != nil {
				time.Sleep(time.Second)
			}
			<-ctx.Done()
			return
		case errors.Is(err, podrunner.ErrNotRunnable):
			// An image that cannot run here (a typo, another registry):
			// never Ready, as a kubelet that cannot pull it.
			r.c.forgetAddress(pod.Status.PodIP)
			r.c.opts.Logf("pod %s: %v: it stays not Ready", key, err)
			<-ctx.Done()
			return
		default:
			r.c.forgetAddress(pod.Status.PodIP)
			if err.Error() != lastErr {
				r.c.opts.Logf("pod %s: %v", key, err)
				lastErr = err.Error()
			}
			if failedInit {
				// As a kubelet reports it: the init container backs off
				// (its last run's exit code and termination message), or
				// with restartPolicy Never the pod failed for good.
				initFailures++
				final := pod.Spec.RestartPolicy == corev1.RestartPolicyNever
				for ctx.Err() == nil && r.setInitFailed(ctx, pod, initErr, initFailures, final) != nil {
					time.Sleep(time.Second)
				}
				if final {
					<-ctx.Done()
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}
	r.c.opts.Logf("pod %s: running on %s", key, p.IP)
	w.mu.Lock()
	w.pod = p
	w.mu.Unlock()
	defer func() {
		p.Stop()
		r.c.forgetAddress(pod.Status.PodIP)
	}()
	// Report the pod's status whenever the runner's probes or supervisor
	// change it (OnChange), retrying a failed write every second.
	var reported *podrunner.Status
	for {
		s := p.Status()
		if reported == nil || !sameStatus(*reported, s) {
			if err := r.setStatus(ctx, pod, &s); err == nil {
				if s.Phase != "" {
					// Every container finished for good (a Job's pod):
					// nothing runs any more, as on a kubelet.
					r.c.opts.Logf("pod %s: %s", key, s.Phase)
					p.Stop()
					<-ctx.Done()
					return
				}
				if reported == nil || reported.Ready != s.Ready {
					if s.Ready {
						r.c.opts.Logf("pod %s: ready", key)
					} else {
						r.c.opts.Logf("pod %s: not ready: %s", key, notReadyMessage(s))
					}
				}
				reported = &s
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(time.Second):
		}
	}
}

// sameStatus compares what the API shows of two statuses (not messages).
func sameStatus(a, b podrunner.Status) bool {
	if a.Ready != b.Ready || a.Phase != b.Phase || len(a.Containers) != len(b.Containers) {
		return false
	}
	for i := range a.Containers {
		x, y := a.Containers[i], b.Containers[i]
		if x.Ready != y.Ready || x.Running != y.Running || x.RestartCount != y.RestartCount || x.Finished != y.Finished || x.LastTermination != y.LastTermination {
			return false
		}
	}
	return true
}

func notReadyMessage(s podrunner.Status) string {
	var msgs []string
	for _, c := range s.Containers {
		if !c.Ready {
			msgs = append(msgs, c.Message)
		}
	}
	return strings.Join(msgs, "; ")
}

// simulated reports whether every image of the pod is in the local registry:
// the packages' runtimes, which kwok alone simulates.
func (r *podRunner) simulated(pod *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if !strings.HasPrefix(c.Image, r.c.Registry+"/") {
			return false
		}
	}
	return true
}

// setStatus sets the pod's Ready and ContainersReady conditions, and its
// containers' ready flags, states and restart counts, as a kubelet reports
// them; a nil status is a pod kwok alone simulates: Ready.
func (r *podRunner) setStatus(ctx context.Context, orig *corev1.Pod, s *podrunner.Status) error {
	pod := &corev1.Pod{}
	if err := r.c.Client.Get(ctx, nsName(orig.Namespace, orig.Name), pod); err != nil {
		return err
	}
	if pod.UID != orig.UID {
		return errors.New("pod was replaced")
	}
	ready := s == nil || s.Ready
	status, reason := corev1.ConditionFalse, "ContainersNotReady"
	if ready {
		status, reason = corev1.ConditionTrue, ""
	}
	byName := map[string]podrunner.ContainerStatus{}
	if s != nil {
		for _, c := range s.Containers {
			byName[c.Name] = c
		}
	}
	var unready []string
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		c, ok := byName[cs.Name]
		if !ok {
			cs.Ready = ready
			continue
		}
		cs.Ready, cs.RestartCount = c.Ready, c.RestartCount
		switch {
		case c.Finished:
			cs.State, cs.Started = corev1.ContainerState{Terminated: terminated(c.LastTermination)}, new(false)
		case c.Running && cs.State.Running == nil:
			cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
		case !c.Running:
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: c.Message}}
		}
		if c.LastTermination != nil && !c.Finished {
			cs.LastTerminationState = corev1.ContainerState{Terminated: terminated(c.LastTermination)}
		}
		if !c.Ready {
			unready = append(unready, cs.Name)
		}
	}
	if s != nil {
		// The pod started: every init container completed (after failed
		// runs setInitFailed reported, if any).
		for i := range pod.Status.InitContainerStatuses {
			cs := &pod.Status.InitContainerStatuses[i]
			t, ran := s.Inits[cs.Name]
			switch done := cs.State.Terminated; {
			case ran && (done == nil || done.ExitCode != 0 || done.Message != t.Message):
				// As a kubelet reports it, with its termination message
				// (kwok's pod stage marks init containers completed
				// without one).
				cs.Ready, cs.State = true, corev1.ContainerState{Terminated: terminated(&t)}
			case !ran && (done == nil || done.ExitCode != 0):
				now := metav1.Now()
				cs.Ready, cs.State = true, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now}}
			}
		}
		for i := range pod.Status.Conditions {
			if cd := &pod.Status.Conditions[i]; cd.Type == corev1.PodInitialized && cd.Status != corev1.ConditionTrue {
				cd.Status, cd.Reason, cd.LastTransitionTime = corev1.ConditionTrue, "", metav1.Now()
			}
		}
	}
	msg := ""
	if !ready {
		msg = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	}
	if s != nil && s.Phase != "" {
		pod.Status.Phase, reason = s.Phase, "PodCompleted"
	}
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		found := false
		for i := range pod.Status.Conditions {
			cd := &pod.Status.Conditions[i]
			if cd.Type != t {
				continue
			}
			found = true
			if cd.Status != status {
				cd.LastTransitionTime = metav1.Now()
			}
			cd.Status, cd.Reason, cd.Message = status, reason, msg
		}
		if !found {
			pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()})
		}
	}
	return r.c.Client.Status().Update(ctx, pod)
}

// terminated is a finished container run as the API shows it.
func terminated(t *podrunner.Termination) *corev1.ContainerStateTerminated {
	reason := "Completed"
	if t.ExitCode != 0 {
		reason = "Error"
	}
	return &corev1.ContainerStateTerminated{
		ExitCode: int32(t.ExitCode), Reason: reason, Message: t.Message,
		StartedAt: metav1.NewTime(t.StartedAt), FinishedAt: metav1.NewTime(t.FinishedAt),
	}
}

// setInitFailed reports an init container's failed run (its failures-th) as
// a kubelet does: backing off before the next run, or, final (restartPolicy
// Never), terminated in a Failed pod.
func (r *podRunner) setInitFailed(ctx context.Context, orig *corev1.Pod, e *podrunner.InitError, failures int32, final bool) error {
	pod := &corev1.Pod{}
	if err := r.c.Client.Get(ctx, nsName(orig.Namespace, orig.Name), pod); err != nil {
		return err
	}
	if pod.UID != orig.UID {
		return errors.New("pod was replaced")
	}
	for i := range pod.Status.InitContainerStatuses {
		cs := &pod.Status.InitContainerStatuses[i]
		if cs.Name != e.Container {
			continue
		}
		cs.Ready = false
		if final {
			cs.State = corev1.ContainerState{Terminated: terminated(&e.Termination)}
			continue
		}
		cs.RestartCount = failures - 1
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: fmt.Sprintf("back-off restarting failed container %s in pod %s_%s", e.Container, pod.Name, pod.Namespace),
		}}
		cs.LastTerminationState = corev1.ContainerState{Terminated: terminated(&e.Termination)}
	}
	// The containers never started (kwok's stage said running).
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		cs.Ready, cs.Started = false, new(false)
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
	}
	for i := range pod.Status.Conditions {
		if cd := &pod.Status.Conditions[i]; cd.Type == corev1.PodInitialized && cd.Status != corev1.ConditionFalse {
			cd.Status, cd.Reason, cd.LastTransitionTime = corev1.ConditionFalse, "ContainersNotInitialized", metav1.Now()
		}
	}
	if final {
		pod.Status.Phase = corev1.PodFailed
	}
	return r.c.Client.Status().Update(ctx, pod)
}

// A podSource reads a pod's ConfigMaps, Secrets and claims from the API
// server; claims resolve to the directory of their hostPath volume.
type podSource struct {
	c         *Cluster
	namespace string
	pod       *corev1.Pod
}

// ServiceAccountToken requests a token of the pod's service account bound to
// the pod (TokenRequest), as the kubelet does for projected volumes.
func (s *podSource) ServiceAccountToken(ctx context.Context, audience string, expirationSeconds int64) ([]byte, error) {
	name := s.pod.Spec.ServiceAccountName
	if name == "" {
		name = "default"
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: s.pod.Name, UID: s.pod.UID},
	}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}}
	if err := s.c.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return nil, errors.Wrapf(err, "cannot request a token of ServiceAccount %q", name)
	}
	return []byte(tr.Status.Token), nil
}

func (s *podSource) ConfigMap(ctx context.Context, name string) (map[string][]byte, error) {
	cm := &corev1.ConfigMap{}
	if err := s.c.Client.Get(ctx, nsName(s.namespace, name), cm); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	maps.Copy(out, cm.BinaryData)
	return out, nil
}

func (s *podSource) Secret(ctx context.Context, name string) (map[string][]byte, error) {
	sec := &corev1.Secret{}
	if err := s.c.Client.Get(ctx, nsName(s.namespace, name), sec); err != nil {
		return nil, err
	}
	return sec.Data, nil
}

func (s *podSource) ClaimDir(ctx context.Context, name string) (string, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := s.c.Client.Get(ctx, nsName(s.namespace, name), pvc); err != nil {
		return "", err
	}
	if pvc.Spec.VolumeName == "" {
		return "", errors.Errorf("PVC %q is not bound yet", name)
	}
	pv := &corev1.PersistentVolume{}
	if err := s.c.Client.Get(ctx, nsName("", pvc.Spec.VolumeName), pv); err != nil {
		return "", errors.Wrapf(err, "cannot get PV %q", pvc.Spec.VolumeName)
	}
	if pv.Spec.HostPath == nil {
		return "", errors.Errorf("PV %q is not a hostPath volume", pv.Name)
	}
	return pv.Spec.HostPath.Path, nil
}

// stagesFile writes kwok's stages for this control plane: the ones built with
// kwok, with pod-ready replaced by pod-running when the pod runner runs, and
// without pod-complete then (it marks every Job's pod Succeeded at once: the
// runner runs them and reports how they ended).
func (c *Cluster) stagesFile() (string, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(c.tools["kwok"])), "stages", "stages.yaml"))
	if err != nil {
		return "", errors.Wrap(err, "cannot read kwok's stages")
	}
	var out []string
	for doc := range strings.SplitSeq(string(b), "\n---") {
		lines := strings.Split(doc, "\n")
		if strings.TrimSpace(doc) == "" || (!c.opts.NoPods && (slices.Contains(lines, "  name: pod-ready") || slices.Contains(lines, "  name: pod-complete"))) {
			continue
		}
		out = append(out, doc)
	}
	if !c.opts.NoPods {
		out = append(out, "\n"+string(podRunningStage))
	}
	f := filepath.Join(c.opts.Dir, "kwok-stages.yaml")
	return f, errors.Wrap(os.WriteFile(f, []byte(strings.Join(out, "\n---")), 0o600), "cannot write kwok's stages")
}
