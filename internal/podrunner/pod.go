package podrunner

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ai-decenter/redishttp/internal/process"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Options configure how a pod runs.
type Options struct {
	// Dir receives the pod's files: its volumes (other than claims) and the
	// containers' logs, under logs/<container>.log.
	Dir string
	// IP is the pod's IP, which it gets in its own network namespace.
	IP string
	// Resolve says how each container's image runs here.
	Resolve Resolver
	// PidFile, when set, names a file to hold the pid of a container's
	// process while it runs.
	PidFile func(container string) string
	// InitTimeout bounds each init container's run; 2 minutes when zero.
	InitTimeout time.Duration
	// DNS, when set, is the pod's /etc/resolv.conf, as the kubelet writes it
	// for dnsPolicy ClusterFirst; the machine's otherwise.
	DNS *DNS
	// ClusterDomain completes the pod's own name when its spec has a
	// subdomain (<hostname>.<subdomain>.<namespace>.svc.<domain>);
	// cluster.local when empty.
	ClusterDomain string
	// Env is what the kubelet adds to every container's environment (the
	// API server's Service); the container's own variables win.
	Env []string
	// OnChange, when set, is called whenever a container's readiness,
	// running state or restart count changed (see Status). It must not block.
	OnChange func()
}

// DNS is a pod's resolver configuration.
type DNS struct {
	// Nameserver is the cluster DNS server's address.
	Nameserver string
	// Searches are the search domains, in order.
	Searches []string
}

// A Pod is a pod running as local processes.
type Pod struct {
	// IP is the pod's IP.
	IP string
	// Dir holds the pod's files.
	Dir string

	name     string
	hostname string
	net      *network
	ctrs     []*container
	// inits is how each init container's (successful) run ended.
	inits    map[string]Termination
	grace    time.Duration
	onChange func()
	policy   corev1.RestartPolicy

	stopOnce sync.Once
	stopped  chan struct{}
	wg       sync.WaitGroup
}

// A container of a pod, resolved.
type container struct {
	spec   corev1.Container
	argv   []string
	vars   map[string]string // the container's environment variables
	env    []string          // the process environment
	mounts map[string]string // mount point -> local directory
	// termFile is the local file bind-mounted at the container's
	// terminationMessagePath.
	termFile string

	mu       sync.Mutex
	proc     *process.Process
	restarts int32
	started  time.Time
	ready    bool         // what the readiness probe last decided for this run
	reason   string       // why it is not ready
	last     *Termination // how its last run ended
	finished bool         // it ended for good (the restart policy says so)
}

// A Termination is how a container's run ended, as a kubelet reports it.
type Termination struct {
	ExitCode int
	// Message is the termination message: what the process wrote to its
	// terminationMessagePath (at most 4096 bytes), or with policy
	// FallbackToLogsOnError and a failure, the end of its log.
	Message    string
	StartedAt  time.Time
	FinishedAt time.Time
}

// The kubelet's bounds of a termination message.
const (
	defaultTerminationMessagePath = "/dev/termination-log"
	maxTerminationMessage         = 4096
	maxFallbackMessage            = 2048
)

// An InitError is an init container that exited non-zero.
type InitError struct {
	Container string
	Termination
	// Output is the end of its log.
	Output string
}

func (e *InitError) Error() string {
	// The end of the output says why (its start is the command line).
	out := []rune(strings.Join(strings.Fields(e.Output), " "))
	if len(out) > 200 {
		out = append([]rune("..."), out[len(out)-200:]...)
	}
	return fmt.Sprintf("init container %q exited %d: %s", e.Container, e.ExitCode, string(out))
}

// Start runs pod: its init containers in order, each to completion, then its
// containers, each with its probes. It returns an error wrapping
// ErrNotRunnable when a container's image cannot run here, and other errors
// (a volume not bound yet, an init container failing) that a later attempt
// may not have. Call Stop when the pod goes away.
func Start(ctx context.Context, pod *corev1.Pod, src Source, o Options) (*Pod, error) {
	if o.InitTimeout == 0 {
		o.InitTimeout = 2 * time.Minute
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	p := &Pod{IP: o.IP, Dir: o.Dir, name: pod.Name, hostname: pod.Name, stopped: make(chan struct{}), grace: 30 * time.Second, onChange: o.OnChange, policy: pod.Spec.RestartPolicy}
	if pod.Spec.Hostname != "" {
		p.hostname = pod.Spec.Hostname
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		p.grace = time.Duration(*g) * time.Second
	}
	spec := &pod.Spec
	inits := make([]*container, 0, len(spec.InitContainers))
	for _, ic := range spec.InitContainers {
		c, err := resolve(ctx, o.Resolve, ic)
		if err != nil {
			return nil, err
		}
		inits = append(inits, c)
	}
	for _, mc := range spec.Containers {
		if mc.Lifecycle != nil && mc.Lifecycle.PostStart != nil {
			return nil, errors.Errorf("container %q: postStart hooks are not supported", mc.Name)
		}
		c, err := resolve(ctx, o.Resolve, mc)
		if err != nil {
			return nil, err
		}
		p.ctrs = append(p.ctrs, c)
	}
	for _, d := range []string{"logs", "termination"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o750); err != nil {
			return nil, errors.Wrap(err, "cannot create the pod's directory")
		}
	}
	dirs, claims, err := volumes(ctx, src, pod, o.Dir)
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	for _, c := range append(append([]*container{}, inits...), p.ctrs...) {
		if c.mounts, err = mounts(&c.spec, dirs); err != nil {
			return nil, err
		}
		maps.Copy(all, c.mounts)
		if err := c.terminationFile(o.Dir); err != nil {
			return nil, err
		}
		if c.vars, err = env(ctx, src, pod, &c.spec); err != nil {
			return nil, err
		}
		mapEnvPaths(c.vars, c.mounts)
		// The container runtime sets HOSTNAME to the pod's hostname.
		c.env = append([]string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + p.hostname, "HOME=" + o.Dir}, o.Env...)
		keys := make([]string, 0, len(c.vars))
		for k := range c.vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c.env = append(c.env, k+"="+c.vars[k])
		}
		for i, a := range c.argv {
			c.argv[i] = mapPaths(expand(a, c.vars), c.mounts)
		}
	}
	// Bind mounts need their mount point on the machine (an empty directory
	// under /run, a tmpfs).
	for _, c := range p.ctrs {
		for _, m := range secretMounts(c.spec.VolumeMounts) {
			if err := os.MkdirAll(m, 0o755); err != nil { //nolint:gosec // An empty mount point.
				return nil, errors.Wrapf(err, "cannot create mount point %q", m)
			}
		}
	}
	// Files the containers read may name other mounted paths (include, dir).
	for name, dir := range dirs {
		if claims[name] {
			continue
		}
		if err := rewriteTree(dir, all); err != nil {
			return nil, errors.Wrap(err, "cannot map the paths in the pod's files")
		}
	}
	if p.net, err = setupNetwork(o.IP); err != nil {
		return nil, err
	}
	// The kubelet's hosts file: the pod's fully qualified name first when it
	// has a subdomain (a StatefulSet's pods: <pod>.<headless Service>...).
	if p.hostname != "" {
		p.net.names = []string{p.hostname}
	}
	if p.hostname != "" && spec.Subdomain != "" {
		p.net.names = []string{fmt.Sprintf("%s.%s.%s.svc.%s", p.hostname, spec.Subdomain, pod.Namespace, o.ClusterDomain), p.hostname}
	}
	if err := p.net.writeResolvConf(o.DNS); err != nil {
		p.net.teardown()
		return nil, err
	}
	if err := p.net.writeHosts(); err != nil {
		p.net.teardown()
		return nil, err
	}
	// The kubelet keeps ConfigMap and Secret volumes up to date from the
	// start, init containers included; a pod that fails to start stops it.
	refreshing, stopRefresh := context.WithCancel(context.WithoutCancel(ctx))
	started := false
	defer func() {
		if !started {
			stopRefresh()
		}
	}()
	p.wg.Go(func() { p.refresh(refreshing, src, pod, dirs, claims, all); stopRefresh() })
	p.inits = map[string]Termination{}
	for _, c := range inits {
		pr := p.newProc(c, o)
		began := time.Now()
		if err := pr.Start(); err != nil {
			p.net.teardown()
			return nil, err
		}
		select {
		case <-pr.Exited():
		case <-time.After(o.InitTimeout):
			pr.Stop(time.Second)
			p.net.teardown()
			return nil, errors.Errorf("init container %q did not finish within %s", c.spec.Name, o.InitTimeout)
		case <-ctx.Done():
			pr.Stop(time.Second)
			p.net.teardown()
			return nil, ctx.Err()
		}
		if code := pr.ExitCode(); code != 0 {
			p.net.teardown()
			return nil, &InitError{Container: c.spec.Name, Termination: c.termination(pr, time.Time{}), Output: pr.Tail(500)}
		}
		p.inits[c.spec.Name] = c.termination(pr, began)
	}
	for _, c := range p.ctrs {
		c.proc = p.newProc(c, o)
		c.started = time.Now()
		if err := c.proc.Start(); err != nil {
			p.Stop()
			return nil, err
		}
		p.wg.Add(1)
		go p.supervise(c, o)
		for _, pr := range []struct {
			probe    *corev1.Probe
			liveness bool
		}{{c.spec.ReadinessProbe, false}, {c.spec.LivenessProbe, true}} {
			if pr.probe != nil {
				p.wg.Go(func() { p.prober(context.WithoutCancel(ctx), c, pr.probe, pr.liveness) })
			}
		}
	}
	started = true
	p.notify()
	return p, nil
}

func (p *Pod) notify() {
	if p.onChange != nil {
		p.onChange()
	}
}

func resolve(ctx context.Context, r Resolver, ctr corev1.Container) (*container, error) {
	argv, err := r(ctx, ctr.Image, ctr.Command, ctr.Args)
	if err != nil {
		return nil, errors.Wrapf(err, "container %q (image %q)", ctr.Name, ctr.Image)
	}
	return &container{spec: ctr, argv: argv}, nil
}

func (p *Pod) newProc(c *container, o Options) *process.Process {
	// Every run starts with an empty termination message.
	_ = os.WriteFile(c.termFile, nil, 0o600)
	pr := &process.Process{Name: c.spec.Name, Argv: p.exec(c, c.argv), Env: c.env, Dir: o.Dir, Log: p.Log(c.spec.Name)}
	if c.spec.WorkingDir != "" {
		pr.Dir = mapPaths(c.spec.WorkingDir, c.mounts)
	}
	if o.PidFile != nil {
		pr.PidFile = o.PidFile(c.spec.Name)
	}
	return pr
}

// exec returns argv run as the pod runs container c's processes (c nil: no
// container's mounts): in the pod's network namespace, in a UTS namespace of
// its own whose hostname is the pod's (what hostname(1) prints in a real
// pod), with the volumes mounted under /var/run/secrets bind-mounted there
// in its private mount namespace (programs such as client-go's in-cluster
// config read the service account token at a path they cannot be told).
func (p *Pod) exec(c *container, argv []string) []string {
	var script []string
	if p.hostname != "" {
		script = append(script, `hostname "$0"`)
	}
	if c != nil {
		for _, m := range secretMounts(c.spec.VolumeMounts) {
			script = append(script, "mount --bind "+shellQuote(c.mounts[path.Clean(m)])+" "+shellQuote(m))
		}
		if c.termFile != "" {
			script = append(script, "mount --bind "+shellQuote(c.termFile)+" "+shellQuote(c.terminationPath()))
		}
	}
	if len(script) == 0 {
		return p.net.exec(argv)
	}
	prefix := []string{"sh", "-c", strings.Join(append(script, `exec "$@"`), " && "), p.hostname}
	if p.hostname != "" {
		prefix = append([]string{"unshare", "--uts"}, prefix...)
	}
	return p.net.exec(append(prefix, argv...))
}

// secretMounts are the mount points of a container that are bind-mounted at
// their real path.
func secretMounts(ms []corev1.VolumeMount) []string {
	var out []string
	for _, m := range ms {
		if mp := path.Clean(m.MountPath); strings.HasPrefix(mp, "/var/run/secrets/") || strings.HasPrefix(mp, "/run/secrets/") {
			out = append(out, mp)
		}
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// supervise restarts a container whose process exits, as its pod's restart
// policy says (Always, the default; OnFailure: after a non-zero exit;
// Never), backing off from 1 to 30 seconds, until the pod stops. As when a
// real container's init process dies, what the process left running in its
// process group goes with it.
func (p *Pod) supervise(c *container, o Options) {
	defer p.wg.Done()
	backoff := time.Second
	for {
		c.mu.Lock()
		pr, started := c.proc, c.started
		c.mu.Unlock()
		select {
		case <-p.stopped:
			return
		case <-pr.Exited():
		}
		_ = pr.Signal(syscall.SIGKILL)
		term := c.termination(pr, started)
		again := p.restarts(term.ExitCode)
		c.mu.Lock()
		c.last, c.finished = &term, !again
		c.ready, c.reason = false, fmt.Sprintf("container %q exited %d: %s", c.spec.Name, pr.ExitCode(), oneLine([]byte(pr.Tail(300))))
		c.mu.Unlock()
		p.notify()
		if !again {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-p.stopped:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		next := p.newProc(c, o)
		if err := next.Start(); err != nil {
			continue
		}
		c.mu.Lock()
		c.proc, c.started = next, time.Now()
		c.restarts++
		c.mu.Unlock()
		p.notify()
	}
}

// restarts reports whether the pod's restart policy restarts a container
// that exited with code.
func (p *Pod) restarts(code int) bool {
	switch p.policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	default:
		return true
	}
}

// terminationFile creates the local file that stands for the container's
// terminationMessagePath, and the mount point on the machine (an empty file
// that nothing writes: every container run bind-mounts its own file over it
// in its private mount namespace, as a kubelet mounts one per container).
func (c *container) terminationFile(dir string) error {
	c.termFile = filepath.Join(dir, "termination", c.spec.Name)
	target := c.terminationPath()
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil { //nolint:gosec // A mount point.
			return errors.Wrapf(err, "cannot create the mount point of %q", target)
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644) //nolint:gosec // An empty mount point.
		if err != nil {
			return errors.Wrapf(err, "cannot create the mount point of %q", target)
		}
		_ = f.Close()
	}
	return nil
}

func (c *container) terminationPath() string {
	if c.spec.TerminationMessagePath != "" {
		return path.Clean(c.spec.TerminationMessagePath)
	}
	return defaultTerminationMessagePath
}

// termination reads how the container's run pr, started at started, ended.
func (c *container) termination(pr *process.Process, started time.Time) Termination {
	t := Termination{ExitCode: pr.ExitCode(), StartedAt: started, FinishedAt: time.Now()}
	if f, err := os.Open(c.termFile); err == nil {
		b := make([]byte, maxTerminationMessage)
		n, _ := io.ReadFull(f, b)
		_ = f.Close()
		t.Message = string(b[:n])
	}
	if t.Message == "" && t.ExitCode != 0 && c.spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		t.Message = pr.Tail(maxFallbackMessage)
	}
	return t
}

// prober runs one probe of a container as the kubelet does: every
// periodSeconds once initialDelaySeconds passed since the container started,
// each run bounded by timeoutSeconds. A readiness probe makes the container
// ready after successThreshold passes in a row and not ready after
// failureThreshold failures in a row; a liveness probe that fails
// failureThreshold times in a row restarts the container (preStop hook,
// SIGTERM, the pod's grace period, SIGKILL). Counts start over with every
// run of the container. Unset fields take the Kubernetes defaults.
func (p *Pod) prober(ctx context.Context, c *container, pr *corev1.Probe, liveness bool) {
	period := seconds(pr.PeriodSeconds, 10)
	delay := time.Duration(pr.InitialDelaySeconds) * time.Second
	failures, successes := int(max(pr.FailureThreshold, 1)), int(max(pr.SuccessThreshold, 1))
	if pr.FailureThreshold == 0 {
		failures = 3
	}
	seen := int32(-1)
	var next time.Time
	ok, failed := 0, 0
	for {
		c.mu.Lock()
		proc, run, started := c.proc, c.restarts, c.started
		c.mu.Unlock()
		if run != seen {
			seen, ok, failed, next = run, 0, 0, started.Add(delay)
		}
		// Wake at least every 100 ms to notice a restart.
		if wait := time.Until(next); wait > 0 {
			select {
			case <-p.stopped:
				return
			case <-time.After(min(wait, 100*time.Millisecond)):
			}
			continue
		}
		next = time.Now().Add(period)
		if !proc.Running() {
			continue
		}
		err := p.probe(ctx, c, pr)
		if err == nil {
			ok, failed = ok+1, 0
		} else {
			ok, failed = 0, failed+1
		}
		switch {
		case liveness && failed >= failures:
			p.logf(c, "liveness probe failed %d times, restarting: %v", failed, err)
			p.stopContainer(c, proc, time.Now().Add(p.grace))
			failed = 0
		case !liveness && ok >= successes:
			p.setReady(c, run, true, "")
		case !liveness && failed >= failures:
			p.setReady(c, run, false, err.Error())
		}
	}
}

func seconds(s, def int32) time.Duration {
	if s <= 0 {
		s = def
	}
	return time.Duration(s) * time.Second
}

// setReady records the readiness probe's decision for run (a restart count),
// unless the container was restarted meanwhile.
func (p *Pod) setReady(c *container, run int32, ready bool, reason string) {
	c.mu.Lock()
	changed := c.restarts == run && c.ready != ready
	if c.restarts == run {
		c.ready, c.reason = ready, reason
	}
	c.mu.Unlock()
	if changed {
		p.notify()
	}
}

// logf appends a line about a container to its log, as the kubelet's events
// would say it.
func (p *Pod) logf(c *container, format string, args ...any) {
	f, err := os.OpenFile(p.Log(c.spec.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close() //nolint:errcheck // Best effort.
	_, _ = fmt.Fprintf(f, "--- %s: podrunner: %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// Ready runs every container's readiness probe once, now, and returns nil
// when all pass. A container without a probe is ready while its process
// runs. (Status is what the probes, run on their schedule, decided.)
func (p *Pod) Ready(ctx context.Context) error {
	for _, c := range p.ctrs {
		c.mu.Lock()
		pr := c.proc
		c.mu.Unlock()
		if !pr.Running() {
			return errors.Errorf("container %q is not running (exit code %d): %s", c.spec.Name, pr.ExitCode(), oneLine([]byte(pr.Tail(300))))
		}
		if c.spec.ReadinessProbe == nil {
			continue
		}
		if err := p.probe(ctx, c, c.spec.ReadinessProbe); err != nil {
			return err
		}
	}
	return nil
}

// A ContainerStatus is what a kubelet reports of one container.
type ContainerStatus struct {
	Name string
	// Ready is the readiness probe's decision for the running process (true
	// while it runs when it has no probe).
	Ready bool
	// Running says whether its process runs.
	Running bool
	// RestartCount counts its restarts.
	RestartCount int32
	// Message says why it is not ready.
	Message string
	// LastTermination is how its last run ended, nil while none did.
	LastTermination *Termination
	// Finished says it ended for good (restart policy Never or
	// OnFailure): LastTermination is its state.
	Finished bool
}

// Status is what a kubelet reports of the pod: Ready when every container
// is, and each container's status, in spec order.
type Status struct {
	Ready      bool
	Containers []ContainerStatus
	// Inits is how each init container's run ended (all succeeded: the
	// pod started), by name, with its termination message.
	Inits map[string]Termination
	// Phase is PodSucceeded or PodFailed once every container finished for
	// good (Failed when one exited non-zero), "" while the pod runs.
	Phase corev1.PodPhase
}

// Status returns the pod's status as its probes decided it.
func (p *Pod) Status() Status {
	s := Status{Ready: true, Phase: corev1.PodSucceeded, Inits: p.inits}
	for _, c := range p.ctrs {
		c.mu.Lock()
		cs := ContainerStatus{Name: c.spec.Name, Running: c.proc.Running(), RestartCount: c.restarts, Ready: c.ready, Message: c.reason, LastTermination: c.last, Finished: c.finished}
		c.mu.Unlock()
		switch {
		case !cs.Finished:
			s.Phase = ""
		case cs.LastTermination.ExitCode != 0 && s.Phase != "":
			s.Phase = corev1.PodFailed
		}
		if c.spec.ReadinessProbe == nil {
			cs.Ready = cs.Running
		}
		if !cs.Running {
			cs.Ready = false
		}
		if !cs.Ready && cs.Message == "" {
			cs.Message = fmt.Sprintf("container %q has not passed its readiness probe yet", cs.Name)
		}
		if cs.Ready {
			cs.Message = ""
		}
		s.Ready = s.Ready && cs.Ready
		s.Containers = append(s.Containers, cs)
	}
	return s
}

// Restarts returns how often each container was restarted, by name.
func (p *Pod) Restarts() map[string]int32 {
	out := map[string]int32{}
	for _, cs := range p.Status().Containers {
		out[cs.Name] = cs.RestartCount
	}
	return out
}

// Log is the path of a container's log file.
func (p *Pod) Log(container string) string { return filepath.Join(p.Dir, "logs", container+".log") }

// Stop stops the pod as the kubelet does when it is deleted: for every
// container at once, its preStop hook, then SIGTERM, then SIGKILL once the
// pod's termination grace period (counted from the start of Stop, hooks
// included; a hook that used it all gets 2 more seconds) is over. Then it
// removes the pod's network. Stopping twice is harmless.
func (p *Pod) Stop() {
	p.stopOnce.Do(func() {
		close(p.stopped)
		p.wg.Wait()
		deadline := time.Now().Add(p.grace)
		var wg sync.WaitGroup
		for _, c := range p.ctrs {
			if c.proc == nil {
				continue
			}
			wg.Go(func() { p.stopContainer(c, c.proc, deadline) })
		}
		wg.Wait()
		p.net.teardown()
	})
}

// stopContainer runs the container's preStop hook, then stops its process
// within what is left until deadline.
func (p *Pod) stopContainer(c *container, pr *process.Process, deadline time.Time) {
	if !pr.Running() {
		_ = pr.Signal(syscall.SIGKILL)
		return
	}
	if lc := c.spec.Lifecycle; lc != nil && lc.PreStop != nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		if err := p.hook(ctx, c, lc.PreStop); err != nil {
			p.logf(c, "preStop hook failed: %v", err)
		}
		cancel()
	}
	grace := time.Until(deadline)
	if grace <= 0 {
		grace = 2 * time.Second
	}
	pr.Stop(grace)
}

// String names the pod by IP, for messages.
func (p *Pod) String() string { return fmt.Sprintf("pod %s (%s)", p.name, p.IP) }
