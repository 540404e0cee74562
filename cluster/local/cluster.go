package local

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ai-decenter/redishttp/internal/process"
	"github.com/ai-decenter/redishttp/internal/xpkg"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// A Mode is how the RedisHttpInstance API is installed.
type Mode string

// Modes.
const (
	// ModeClaim installs configuration-redishttp: a v1 LegacyCluster XRD with
	// the RedisHttpInstance claim.
	ModeClaim Mode = "claim"
	// ModeNamespaced installs configuration-redishttp-namespaced: a v2
	// Namespaced XRD whose XR is RedisHttpInstance.
	ModeNamespaced Mode = "namespaced"
)

// Options configure a control plane.
type Options struct {
	// Dir holds everything the control plane writes: kubeconfig, logs, pid
	// files, etcd data, volumes, pods' files.
	Dir string
	// RepoRoot is the repository checkout the packages are built from.
	RepoRoot string
	// ToolDirs are the directories holding the pinned tools (hack/tools.sh).
	ToolDirs []string
	// Mode selects the Configuration to install. ModeClaim if empty.
	Mode Mode
	// Version of the packages built and installed; v0.1.0 if empty.
	Version string
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
	// Debug starts the function and provider with --debug.
	Debug bool
	// NoPods disables the pod runner and the cluster network (Services,
	// DNS): pods are only simulated by kwok (for benchmarks with many
	// instances).
	NoPods bool
	// Nodes is how many fake nodes kwok runs (pods spread over them, a
	// node can be drained); 3 when zero.
	Nodes int
	// ProviderPollInterval is the provider's --poll-interval (how often it
	// checks each ApiKey for drift); the provider's default (1m) when zero.
	// A test that must tell a watch from the poll sets it longer than its
	// waits: whatever it then sees within them, the watch did.
	ProviderPollInterval time.Duration
	// KubeOnly starts Kubernetes alone (etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler, kwok, the pod runner and the
	// cluster network): no packages, no Crossplane. For the platform's own
	// tests.
	KubeOnly bool
}

// A Cluster is a running local control plane.
type Cluster struct {
	opts Options

	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	// REST is the admin REST config.
	REST *rest.Config
	// Client is an admin client knowing the core Kubernetes types; use
	// unstructured objects for Crossplane's and ours.
	Client client.Client
	// Registry is the local registry with organisation, e.g.
	// 127.0.0.1:41234/ai-decenter.
	Registry string
	// PodCIDR is the loopback range pods get their IPs from.
	PodCIDR string
	// FunctionAddress is where the function process serves (the loopback
	// address the function's Service name resolves to for Crossplane core).
	FunctionAddress string

	tools    map[string]string
	pki      *pki
	token    string
	seq      int
	mu       sync.Mutex
	procs    []*process.Process
	function *process.Process
	provider *process.Process
	core     *process.Process
	env      []string
	stops    []func()
	started  map[string]time.Time
	runner   *podRunner
	netIndex int
	services *serviceNet
}

func (o *Options) defaults() {
	if o.Mode == "" {
		o.Mode = ModeClaim
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Version == "" {
		o.Version = "v0.1.0"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Names of what the control plane installs.
const (
	NamespaceCrossplane = "crossplane-system"
	FunctionName        = "function-redishttp"
	ProviderName        = "provider-redishttp"
)

// Start brings the control plane up: tools, packages, Crossplane, and the
// Configuration for opts.Mode, installed and Healthy. Call Stop when done,
// also when Start fails.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts.defaults()
	// The harness's clients log nothing of their own; without a logger
	// controller-runtime prints a warning with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	c := &Cluster{opts: opts, tools: map[string]string{}, started: map[string]time.Time{}}
	tools := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}
	if !opts.KubeOnly {
		tools = append(tools, "crossplane", "crossplane-core")
	}
	for _, t := range tools {
		p, err := findTool(opts.ToolDirs, t)
		if err != nil {
			return c, err
		}
		c.tools[t] = p
	}
	for _, d := range []string{"logs", "pids", "pki", "etcd", "volumes", "pods", "xpkg-cache", "packages"} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, d), 0o750); err != nil {
			return c, errors.Wrap(err, "cannot create state directory")
		}
	}
	if err := c.claimNetwork(); err != nil {
		return c, err
	}
	t0 := time.Now()
	step := func(what string, fn func(context.Context) error) error {
		t := time.Now()
		if err := fn(ctx); err != nil {
			return errors.Wrapf(err, "cannot %s", what)
		}
		opts.Logf("%-40s %6.1fs (total %.1fs)", what, time.Since(t).Seconds(), time.Since(t0).Seconds())
		return nil
	}

	// Packages build while the control plane starts.
	reg, err := c.startRegistry()
	if err != nil {
		return c, err
	}
	c.Registry = reg + "/ai-decenter"
	type built struct {
		pkgs []xpkg.Artifact
		err  error
	}
	pkgs := make(chan built, 1)
	if !opts.KubeOnly {
		go func() {
			b, err := c.buildPackages(ctx)
			pkgs <- built{b, err}
		}()
	}

	for _, s := range []struct {
		what string
		fn   func(context.Context) error
	}{
		{"start etcd and kube-apiserver", c.startAPIServer},
		{"start controller-manager, scheduler, kwok", c.startKube},
		{"create node and crossplane-system", c.prepare},
	} {
		if err := step(s.what, s.fn); err != nil {
			return c, err
		}
	}
	c.startVolumes(ctx)
	if !opts.NoPods {
		if err := step("start the cluster network (Services, DNS)", c.startServices); err != nil {
			return c, err
		}
		c.startPods(ctx)
	}
	if opts.KubeOnly {
		return c, nil
	}
	var b built
	if err := step("build and push packages and images", func(ctx context.Context) error {
		select {
		case b = <-pkgs:
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			return b.err
		}
		return c.pushPackages(ctx, b.pkgs)
	}); err != nil {
		return c, err
	}
	for _, s := range []struct {
		what string
		fn   func(context.Context) error
	}{
		{"start crossplane core", c.startCrossplane},
		{"install packages as README.md says (" + string(opts.Mode) + ")", c.install},
	} {
		if err := step(s.what, s.fn); err != nil {
			return c, err
		}
	}
	return c, c.newClient()
}

// Stop stops everything Start started, in reverse order, one at a time.
func (c *Cluster) Stop() {
	c.mu.Lock()
	stops := c.stops
	c.stops = nil
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for _, stop := range slices.Backward(stops) {
		stop()
	}
	for _, proc := range slices.Backward(procs) {
		proc.Stop(10 * time.Second)
	}
}

// FunctionPid is the pid of the function process, 0 when it is not running.
func (c *Cluster) FunctionPid() int {
	if c.function == nil || !c.function.Running() {
		return 0
	}
	return c.function.Pid()
}

// Dir is the control plane's state directory.
func (c *Cluster) Dir() string { return c.opts.Dir }

// Mode is the installed mode.
func (c *Cluster) Mode() Mode { return c.opts.Mode }

func (c *Cluster) onStop(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stops = append(c.stops, f)
}

// newProcess registers a process; its pid file name carries the start
// sequence so StopPidFiles stops it in reverse order.
func (c *Cluster) newProcess(name, path string, args ...string) *process.Process {
	p := &process.Process{
		Name: name, Argv: append([]string{path}, args...), Env: os.Environ(),
		Log:     filepath.Join(c.opts.Dir, "logs", name+".log"),
		PidFile: c.pidFile(name),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.procs = append(c.procs, p)
	return p
}

// pidFile names the pid file of a process started now: the name carries the
// start sequence, so StopPidFiles stops processes in reverse order.
func (c *Cluster) pidFile(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return filepath.Join(c.opts.Dir, "pids", fmt.Sprintf("%05d-%s.pid", c.seq, name))
}

func findTool(dirs []string, name string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.Errorf("cannot find tool %q in %q (build it with hack/tools.sh)", name, strings.Join(dirs, ":"))
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdPort, peer, api := ports[0], ports[1], ports[2]
	etcd := c.newProcess("etcd", c.tools["etcd"],
		"--name=default", "--data-dir="+filepath.Join(c.opts.Dir, "etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdPort), fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", peer), fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", peer),
		fmt.Sprintf("--initial-cluster=default=http://127.0.0.1:%d", peer),
		"--unsafe-no-fsync", "--log-level=warn")
	if err := etcd.Start(); err != nil {
		return err
	}
	if c.pki, err = newPKI(filepath.Join(c.opts.Dir, "pki"), kubernetesIP(c.netIndex)); err != nil {
		return err
	}
	c.token = randomHex(16)
	tokens := filepath.Join(c.opts.Dir, "pki", "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return errors.Wrap(err, "cannot write token file")
	}
	apiserver := c.newProcess("kube-apiserver", c.tools["kube-apiserver"],
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		fmt.Sprintf("--secure-port=%d", api), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--tls-cert-file="+c.pki.ServerCert, "--tls-private-key-file="+c.pki.ServerKey, "--client-ca-file="+c.pki.CACert,
		"--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.pki.SAPub, "--service-account-signing-key-file="+c.pki.SAKey,
		"--service-cluster-ip-range="+serviceCIDR(c.netIndex), "--allow-privileged=true", "--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false", "--profiling=false", "--v=0")
	if err := apiserver.Start(); err != nil {
		return err
	}
	c.REST = &rest.Config{
		Host: fmt.Sprintf("https://127.0.0.1:%d", api), BearerToken: c.token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.pki.CACert},
		QPS:             200, Burst: 400,
	}
	ca, err := os.ReadFile(c.pki.CACert)
	if err != nil {
		return errors.Wrap(err, "cannot read CA")
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.REST.Host, CertificateAuthorityData: ca}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.token}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "local"
	c.Kubeconfig = filepath.Join(c.opts.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, c.Kubeconfig); err != nil {
		return errors.Wrap(err, "cannot write kubeconfig")
	}
	// /readyz says yes only once etcd answers and bootstrap controllers ran.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	err = wait.PollUntilContextTimeout(ctx, pollInterval, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		if !apiserver.Running() {
			return false, errors.Errorf("kube-apiserver exited:\n%s", apiserver.Tail(3000))
		}
		if !etcd.Running() {
			return false, errors.Errorf("etcd exited:\n%s", etcd.Tail(3000))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.REST.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		rsp, err := hc.Do(req)
		if err != nil {
			return false, nil //nolint:nilerr // Not there yet: poll retries.
		}
		_ = rsp.Body.Close()
		return rsp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return errors.Wrap(err, "kube-apiserver did not become ready")
	}
	return c.newClient()
}

// newClient (re)creates c.Client. A client's REST mapper does not learn kinds
// added later to an API group it has already seen, so Start makes a fresh one
// once every package is installed.
func (c *Cluster) newClient() error {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return errors.Wrap(err, "cannot build scheme")
	}
	cl, err := client.New(c.REST, client.Options{Scheme: s})
	if err != nil {
		return errors.Wrap(err, "cannot create client")
	}
	c.Client = cl
	return nil
}

func (c *Cluster) startKube(ctx context.Context) error {
	kcm := c.newProcess("kube-controller-manager", c.tools["kube-controller-manager"],
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+c.pki.SAKey, "--root-ca-file="+c.pki.CACert,
		"--use-service-account-credentials=false", "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle",
		"--concurrent-statefulset-syncs=10", "--v=0")
	sched := c.newProcess("kube-scheduler", c.tools["kube-scheduler"],
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=0")
	stages, err := c.stagesFile()
	if err != nil {
		return err
	}
	// Pod IPs come from a /20 of 198.18.0.0/16 (RFC 2544, never routed), not
	// from 127/8: the API server rejects loopback addresses in EndpointSlices.
	// Each running pod gets its IP in its own network namespace (pods.go). The
	// network index (services.go) lets control planes run side by side; tests
	// running single pods take 198.19.0.0/16.
	k := c.netIndex
	c.PodCIDR = fmt.Sprintf("198.18.%d.0/20", k*16)
	c.FunctionAddress = fmt.Sprintf("127.%d.%d.254:9443", 18+k/16, 128+k)
	kwok := c.newProcess("kwok", c.tools["kwok"],
		"--kubeconfig="+c.Kubeconfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr="+c.PodCIDR, "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40")
	for _, p := range []*process.Process{kcm, sched, kwok} {
		if err := p.Start(); err != nil {
			return err
		}
	}
	// Let a broken flag show up here rather than as a hang later.
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, p := range []*process.Process{kcm, sched, kwok} {
		if !p.Running() {
			return errors.Errorf("%s exited:\n%s", p.Name, p.Tail(3000))
		}
	}
	return nil
}

// prepare creates the fake nodes kwok manages and what Crossplane expects to
// exist before it starts.
func (c *Cluster) prepare(ctx context.Context) error {
	for i := range c.opts.Nodes {
		if err := c.createNode(ctx, i); err != nil {
			return err
		}
	}
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	del := corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: StorageClass, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "redishttp.io/local",
		VolumeBindingMode: &wait,
		ReclaimPolicy:     &del,
	}
	if err := c.Client.Create(ctx, sc); err != nil {
		return errors.Wrap(err, "cannot create default StorageClass")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: NamespaceCrossplane}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return errors.Wrap(err, "cannot create namespace")
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "crossplane", Namespace: NamespaceCrossplane}}
	return errors.Wrap(c.Client.Create(ctx, sa), "cannot create service account")
}

// NodeNames are the fake nodes, kwok-node-0 to kwok-node-<Nodes-1>.
func (c *Cluster) NodeNames() []string {
	out := make([]string, c.opts.Nodes)
	for i := range out {
		out[i] = nodeName(i)
	}
	return out
}

// nodePrefix starts the name of every fake node.
const nodePrefix = "kwok-node-"

func nodeName(i int) string { return fmt.Sprintf("%s%d", nodePrefix, i) }

// createNode creates fake node i: its own zone (topology.kubernetes.io/zone
// zone-<i>) and its own /22 of the pod range, untainted.
func (c *Cluster) createNode(ctx context.Context, i int) error {
	name := nodeName(i)
	_, pods, err := net.ParseCIDR(c.PodCIDR)
	if err != nil {
		return errors.Wrapf(err, "cannot parse pod range %q", c.PodCIDR)
	}
	pods.IP[2] += byte(4 * i)
	pods.Mask = net.CIDRMask(22, 32)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok",
				"topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i),
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: pods.String(), PodCIDRs: []string{pods.String()}},
	}
	err = wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return c.Client.Create(ctx, node) == nil, nil
	})
	if err != nil {
		return errors.Wrapf(err, "cannot create node %q", name)
	}
	big := resource.MustParse("1000")
	// Merge patches carry no resourceVersion: kwok patches the node too.
	capacity := fmt.Sprintf(`{"cpu":"%s","memory":"10Ti","pods":"5000"}`, big.String())
	status := []byte(fmt.Sprintf(`{"status":{"capacity":%s,"allocatable":%s}}`, capacity, capacity))
	if err := c.Client.Status().Patch(ctx, node, client.RawPatch(types.MergePatchType, status)); err != nil {
		return errors.Wrapf(err, "cannot set the capacity of node %q", name)
	}
	// The API server taints new nodes not-ready; the node lifecycle
	// controller, which would lift it, is off (it also marks kwok's node
	// NotReady when a lease renewal is late), so lift it here.
	if err := c.Client.Patch(ctx, node, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"taints":null}}`))); err != nil {
		return errors.Wrapf(err, "cannot untaint node %q", name)
	}
	return nil
}

// pollInterval is how often the harness checks a condition it waits for.
const pollInterval = 100 * time.Millisecond

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ImageRef is where the control plane's local registry holds one of the
// project's runtime images, e.g. ImageRef("gateway-redishttp").
func (c *Cluster) ImageRef(name string) string {
	return c.Registry + "/" + name + ":" + c.opts.Version
}
