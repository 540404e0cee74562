package podrunner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
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
	// Hosts, when set, returns /etc/hosts lines for the names the pod may
	// resolve (a stand-in for cluster DNS: Services and their addresses). It
	// is called before the pod starts and every few seconds while it runs.
	Hosts func(ctx context.Context) (string, error)
}

// A Pod is a pod running as local processes.
type Pod struct {
	// IP is the pod's IP.
	IP string
	// Dir holds the pod's files.
	Dir string

	net   *network
	ctrs  []*container
	grace time.Duration

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

	mu       sync.Mutex
	proc     *process.Process
	restarts int32
}

// Start runs pod: its init containers in order, each to completion, then its
// containers. It returns an error wrapping ErrNotRunnable when a container's
// image cannot run here, and other errors (a volume not bound yet, an init
// container failing) that a later attempt may not have. Call Stop when the
// pod goes away.
func Start(ctx context.Context, pod *corev1.Pod, src Source, o Options) (*Pod, error) {
	if o.InitTimeout == 0 {
		o.InitTimeout = 2 * time.Minute
	}
	p := &Pod{IP: o.IP, Dir: o.Dir, stopped: make(chan struct{}), grace: 30 * time.Second}
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
		c, err := resolve(ctx, o.Resolve, mc)
		if err != nil {
			return nil, err
		}
		p.ctrs = append(p.ctrs, c)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o750); err != nil {
		return nil, errors.Wrap(err, "cannot create the pod's directory")
	}
	dirs, claims, err := volumes(ctx, src, spec, o.Dir)
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	for _, c := range append(append([]*container{}, inits...), p.ctrs...) {
		if c.mounts, err = mounts(&c.spec, dirs); err != nil {
			return nil, err
		}
		maps.Copy(all, c.mounts)
		if c.vars, err = env(ctx, src, &c.spec); err != nil {
			return nil, err
		}
		c.env = []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + pod.Name, "HOME=" + o.Dir}
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
	if err := p.refreshHosts(ctx, pod.Name, o.Hosts); err != nil {
		p.net.teardown()
		return nil, err
	}
	for _, c := range inits {
		pr := p.newProc(c, o)
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
			return nil, errors.Errorf("init container %q exited %d: %s", c.spec.Name, code, oneLine([]byte(pr.Tail(500))))
		}
	}
	for _, c := range p.ctrs {
		c.proc = p.newProc(c, o)
		if err := c.proc.Start(); err != nil {
			p.Stop()
			return nil, err
		}
		p.wg.Add(1)
		go p.supervise(c, o)
	}
	if o.Hosts != nil {
		p.wg.Go(func() {
			for {
				select {
				case <-p.stopped:
					return
				case <-time.After(2 * time.Second):
				}
				_ = p.refreshHosts(context.WithoutCancel(ctx), pod.Name, o.Hosts)
			}
		})
	}
	return p, nil
}

func (p *Pod) refreshHosts(ctx context.Context, hostname string, hosts func(context.Context) (string, error)) error {
	extra := ""
	if hosts != nil {
		var err error
		if extra, err = hosts(ctx); err != nil {
			return errors.Wrap(err, "cannot list the names the pod resolves")
		}
	}
	return p.net.writeHosts(hostname, extra)
}

func resolve(ctx context.Context, r Resolver, ctr corev1.Container) (*container, error) {
	argv, err := r(ctx, ctr.Image, ctr.Command, ctr.Args)
	if err != nil {
		return nil, errors.Wrapf(err, "container %q (image %q)", ctr.Name, ctr.Image)
	}
	return &container{spec: ctr, argv: argv}, nil
}

func (p *Pod) newProc(c *container, o Options) *process.Process {
	pr := &process.Process{Name: c.spec.Name, Argv: p.net.exec(c.argv), Env: c.env, Dir: o.Dir, Log: filepath.Join(o.Dir, "logs", c.spec.Name+".log")}
	if c.spec.WorkingDir != "" {
		pr.Dir = mapPaths(c.spec.WorkingDir, c.mounts)
	}
	if o.PidFile != nil {
		pr.PidFile = o.PidFile(c.spec.Name)
	}
	return pr
}

// supervise restarts a container whose process exits (restartPolicy Always),
// backing off from 1 to 30 seconds, until the pod stops.
func (p *Pod) supervise(c *container, o Options) {
	defer p.wg.Done()
	backoff := time.Second
	for {
		c.mu.Lock()
		pr := c.proc
		c.mu.Unlock()
		started := time.Now()
		select {
		case <-p.stopped:
			return
		case <-pr.Exited():
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
		c.proc = next
		c.restarts++
		c.mu.Unlock()
	}
}

// Ready runs every container's readiness probe once and returns nil when all
// pass. A container without a probe is ready while its process runs.
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

// Restarts returns how often each container was restarted, by name.
func (p *Pod) Restarts() map[string]int32 {
	out := map[string]int32{}
	for _, c := range p.ctrs {
		c.mu.Lock()
		out[c.spec.Name] = c.restarts
		c.mu.Unlock()
	}
	return out
}

// Log is the path of a container's log file.
func (p *Pod) Log(container string) string { return filepath.Join(p.Dir, "logs", container+".log") }

// Stop stops the containers (SIGTERM, then SIGKILL after the pod's
// termination grace period) and removes the pod's network. Stopping twice is
// harmless.
func (p *Pod) Stop() {
	p.stopOnce.Do(func() {
		close(p.stopped)
		p.wg.Wait()
		var wg sync.WaitGroup
		for _, c := range p.ctrs {
			if c.proc == nil {
				continue
			}
			wg.Add(1)
			go func(pr *process.Process) { defer wg.Done(); pr.Stop(p.grace) }(c.proc)
		}
		wg.Wait()
		p.net.teardown()
	})
}

// String names the pod by IP, for messages.
func (p *Pod) String() string { return fmt.Sprintf("pod %s", p.IP) }
