package local

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/internal/process"
	"github.com/ai-decenter/redishttp/internal/xpkg"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/fieldpath"
)

// startRegistry serves an in-memory OCI registry on a loopback port and
// returns its host:port. Crossplane speaks plain HTTP to loopback registries.
func (c *Cluster) startRegistry() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", errors.Wrap(err, "cannot listen for the registry")
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	c.onStop(func() { _ = srv.Close() })
	return l.Addr().String(), nil
}

// packagesFor returns the packages a mode installs, in install order.
func packagesFor(m Mode) []xpkg.Package {
	cfg := xpkg.Configuration
	if m == ModeNamespaced {
		cfg = xpkg.ConfigurationNamespaced
	}
	return []xpkg.Package{xpkg.Function, xpkg.Provider, cfg}
}

// runtimeImages are the images the function's pods run (every xpkg Image:
// the gateway, ...), which the pod runner runs from the local registry.
func runtimeImages() []xpkg.Target {
	var out []xpkg.Target
	for _, t := range xpkg.Targets() {
		if _, ok := t.(xpkg.Image); ok {
			out = append(out, t)
		}
	}
	return out
}

// buildPackages builds the images the function's pods run and the packages
// of the mode, for the local registry.
func (c *Cluster) buildPackages(ctx context.Context) ([]xpkg.Artifact, error) {
	o := xpkg.Options{
		RepoRoot: c.opts.RepoRoot, OutDir: filepath.Join(c.opts.Dir, "packages"),
		Registry: c.Registry, Version: c.opts.Version, Crossplane: c.tools["crossplane"],
	}
	targets := runtimeImages()
	for _, p := range packagesFor(c.opts.Mode) {
		targets = append(targets, p)
	}
	return xpkg.Build(ctx, o, targets...)
}

func (c *Cluster) pushPackages(ctx context.Context, built []xpkg.Artifact) error {
	for _, b := range built {
		if err := xpkg.Push(ctx, b.File, b.Ref); err != nil {
			return err
		}
	}
	return nil
}

// functionHosts are the names Crossplane core dials for the function: the
// Service its Deployment runtime creates.
func functionHosts() string {
	n := FunctionName + "." + NamespaceCrossplane
	return strings.Join([]string{n, n + ".svc", n + ".svc.cluster.local"}, " ")
}

func (c *Cluster) startCrossplane(ctx context.Context) error {
	crds := filepath.Join(filepath.Dir(filepath.Dir(c.tools["crossplane-core"])), "crds")
	certs := filepath.Join(c.opts.Dir, "crossplane-tls")
	c.env = []string{
		"KUBECONFIG=" + c.Kubeconfig, "POD_NAMESPACE=" + NamespaceCrossplane, "CRDS_PATH=" + crds,
		"TLS_CA_SECRET_NAME=crossplane-root-ca", "TLS_CLIENT_SECRET_NAME=crossplane-tls-client", "TLS_CLIENT_CERTS_DIR=" + certs,
	}
	initLog := filepath.Join(c.opts.Dir, "logs", "crossplane-init.log")
	// The first init can fail until core's CRDs are Established; retry.
	err := wait.PollUntilContextTimeout(ctx, pollInterval, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		cmd := exec.CommandContext(ctx, c.tools["crossplane-core"], "core", "init", "--enable-webhooks=false",
			// What the Helm chart does by default: activate every managed
			// resource of safe-start providers (our ApiKey).
			"--activation=*")
		cmd.Env = append(os.Environ(), c.env...)
		out, _ := cmd.CombinedOutput()
		_ = appendFile(initLog, out)
		if cmd.ProcessState != nil && cmd.ProcessState.Success() {
			return true, nil
		}
		time.Sleep(500 * time.Millisecond)
		return false, nil
	})
	if err != nil {
		return errors.Wrapf(err, "crossplane core init failed:\n%s", process.Tail(initLog, 3000))
	}
	sec, err := c.secretData(ctx, NamespaceCrossplane, "crossplane-tls-client", 2*time.Minute, "tls.key")
	if err != nil {
		return err
	}
	if err := writeFiles(certs, sec, "ca.crt", "tls.crt", "tls.key"); err != nil {
		return err
	}
	// Core runs in a private mount namespace whose /etc/hosts points the
	// function's Service name at the loopback address the function process
	// serves on: the real mTLS path, without editing the machine's hosts.
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		return errors.Wrap(err, "cannot read /etc/hosts")
	}
	fnHost, _, _ := net.SplitHostPort(c.FunctionAddress)
	hostsFile := filepath.Join(c.opts.Dir, "hosts")
	hosts = append(hosts, []byte(fmt.Sprintf("\n%s %s\n", fnHost, functionHosts()))...)
	if err := os.WriteFile(hostsFile, hosts, 0o644); err != nil {
		return errors.Wrap(err, "cannot write hosts file")
	}
	// Metrics on port 0 (the kernel picks; nothing here scrapes them); the
	// health port is polled below.
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	unshare := []string{"unshare", "-m", "--propagation", "private"}
	if os.Geteuid() != 0 {
		unshare = []string{"unshare", "-r", "-m", "--propagation", "private"}
	}
	core := c.newProcess("crossplane", c.tools["crossplane-core"], "core", "start", "--enable-webhooks=false",
		"--xpkg-cache-dir="+filepath.Join(c.opts.Dir, "xpkg-cache"),
		"--metrics-port=0", fmt.Sprintf("--health-probe-port=%d", ports[0]),
		// The XR circuit breaker's defaults (100 events, refilled at 1/s,
		// then one event per 30 s for 5 minutes) are tuned for a cluster's
		// steady state; the e2e rolls one instance's pod five times in a
		// minute (each roll is dozens of StatefulSet and XR events), which
		// trips it and turns every later step into a 30-60 s wait.
		"--circuit-breaker-burst=1000")
	core.Env = append(core.Env, c.env...)
	unshare = append(unshare, "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hostsFile)
	core.Argv = append(unshare, core.Argv...)
	if err := core.Start(); err != nil {
		return err
	}
	c.core = core
	err = wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if !core.Running() {
			return false, errors.Errorf("crossplane exited:\n%s", core.Tail(3000))
		}
		rsp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[0]))
		if err != nil {
			return false, nil //nolint:nilerr // Not there yet: poll retries.
		}
		_ = rsp.Body.Close()
		return rsp.StatusCode == http.StatusOK, nil
	})
	return errors.Wrap(err, "crossplane did not become ready")
}

// install runs README.md's Install block (installCommands) against the
// control plane, as a user would, with the local registry. A kubectl command
// is retried while it fails (a ClusterProviderConfig can only be applied once
// the provider's CRDs exist). Then it runs the function with the certificates
// Crossplane made for it and the provider out of cluster, points the
// ClusterProviderConfig at EndpointSlices (an out-of-cluster provider cannot
// resolve Service names), and waits for the packages to turn Healthy and the
// XRD to be Established (and Offered, claim mode).
func (c *Cluster) install(ctx context.Context) error {
	readme, err := os.ReadFile(filepath.Join(c.opts.RepoRoot, "README.md"))
	if err != nil {
		return errors.Wrap(err, "cannot read README.md")
	}
	cmds, err := installCommands(readme, c.opts.Mode, c.Registry, c.opts.Version)
	if err != nil {
		return err
	}
	log := filepath.Join(c.opts.Dir, "logs", "install.log")
	for _, argv := range cmds {
		bin, ok := c.tools[argv[0]]
		if !ok {
			return errors.Errorf("README.md's Install block runs %q, which is not a pinned tool", argv[0])
		}
		var out []byte
		err := wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			cmd := exec.CommandContext(ctx, bin, argv[1:]...)
			cmd.Dir = c.opts.RepoRoot
			cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
			out, err = cmd.CombinedOutput()
			_ = appendFile(log, append([]byte("$ "+strings.Join(argv, " ")+"\n"), out...))
			if err == nil {
				return true, nil
			}
			if argv[0] != "kubectl" {
				return false, errors.Wrapf(err, "%s failed: %s", strings.Join(argv, " "), strings.TrimSpace(string(out)))
			}
			time.Sleep(time.Second)
			return false, nil
		})
		if err != nil {
			return errors.Wrapf(err, "%s: %s", strings.Join(argv, " "), strings.TrimSpace(string(out)))
		}
	}
	if err := c.StartFunction(ctx); err != nil {
		return err
	}
	if err := c.waitCRD(ctx, "clusterproviderconfigs.redishttp.io", 3*time.Minute); err != nil {
		return err
	}
	if err := c.StartProvider(ctx); err != nil {
		return err
	}
	pc := &unstructured.Unstructured{}
	pc.SetAPIVersion("redishttp.io/v1alpha1")
	pc.SetKind("ClusterProviderConfig")
	pc.SetName("default")
	patch := []byte(`{"spec":{"instances":{"resolve":"EndpointSlice"}}}`)
	if err := c.Client.Patch(ctx, pc, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return errors.Wrap(err, "cannot point ClusterProviderConfig default at EndpointSlices")
	}
	for _, p := range c.Packages() {
		if err := c.WaitConditions(ctx, "pkg.crossplane.io/v1", p.Kind, "", p.Name, 3*time.Minute, "Installed", "Healthy"); err != nil {
			return err
		}
	}
	conds := []string{"Established"}
	xrd := "redishttpinstances.redishttp.io"
	if c.opts.Mode == ModeClaim {
		conds = append(conds, "Offered")
		xrd = "xredishttpinstances.redishttp.io"
	}
	// v1 and v2 XRDs are the same resource served at two versions.
	return c.WaitConditions(ctx, "apiextensions.crossplane.io/v1", "CompositeResourceDefinition", "", xrd, 2*time.Minute, conds...)
}

// An InstalledPackage is a package object README.md's Install block creates.
type InstalledPackage struct {
	// Kind is Function, Provider or Configuration.
	Kind string
	// Name is the object's name: the name the Install block gives it, or
	// the one the crossplane CLI derives from the reference
	// (ai-decenter-configuration-redishttp).
	Name string
}

// Packages returns the package objects the control plane installed.
func (c *Cluster) Packages() []InstalledPackage {
	return []InstalledPackage{
		{Kind: "Function", Name: FunctionName},
		{Kind: "Provider", Name: ProviderName},
		{Kind: "Configuration", Name: path.Base(c.Registry) + "-" + packagesFor(c.opts.Mode)[2].Name},
	}
}

// StartFunction (re)starts the function process with the TLS server
// certificate Crossplane issued for the function's Service.
func (c *Cluster) StartFunction(ctx context.Context) error {
	sec, err := c.secretData(ctx, NamespaceCrossplane, FunctionName+"-tls-server", 3*time.Minute, "tls.key", "tls.crt", "ca.crt")
	if err != nil {
		return err
	}
	certs := filepath.Join(c.opts.Dir, "function-tls")
	if err := writeFiles(certs, sec, "ca.crt", "tls.crt", "tls.key"); err != nil {
		return err
	}
	if c.function == nil {
		args := []string{"--address=" + c.FunctionAddress, "--tls-certs-dir=" + certs, "--metrics-address="}
		if c.opts.Debug {
			args = append(args, "--debug")
		}
		c.function = c.newProcess("function", filepath.Join(c.opts.Dir, "packages", "bin", "linux_amd64", "function"), args...)
	}
	if err := c.function.Start(); err != nil {
		return err
	}
	return waitListening(ctx, c.function, c.FunctionAddress)
}

// StopFunction stops the function process (tests use it to prove nothing is
// lost while it is down).
func (c *Cluster) StopFunction() { c.function.Stop(10 * time.Second) }

// StartProvider (re)starts the provider process out of cluster.
func (c *Cluster) StartProvider(_ context.Context) error {
	if c.provider == nil {
		// Port 0: nothing here reads the provider's probes, and a port
		// picked now could be taken by the time it (re)starts.
		args := []string{"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0"}
		if c.opts.ProviderPollInterval > 0 {
			args = append(args, "--poll-interval="+c.opts.ProviderPollInterval.String())
		}
		if c.opts.Debug {
			args = append(args, "--debug")
		}
		c.provider = c.newProcess("provider", filepath.Join(c.opts.Dir, "packages", "bin", "linux_amd64", "provider"), args...)
		c.provider.Env = append(c.provider.Env, "KUBECONFIG="+c.Kubeconfig)
	}
	if err := c.provider.Start(); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	if !c.provider.Running() {
		return errors.Errorf("provider exited:\n%s", c.provider.Tail(3000))
	}
	return nil
}

// StopProvider stops the provider process.
func (c *Cluster) StopProvider() { c.provider.Stop(10 * time.Second) }

// WaitConditions waits until the object has every condition type True.
func (c *Cluster) WaitConditions(ctx context.Context, apiVersion, kind, namespace, name string, timeout time.Duration, types ...string) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		if err := c.Client.Get(ctx, nsName(namespace, name), u); err != nil {
			last = err.Error()
			return false, nil //nolint:nilerr // Not there yet: poll retries.
		}
		ok, msg := conditionsTrue(u, types...)
		last = msg
		return ok, nil
	})
	return errors.Wrapf(err, "%s %q did not turn %s (%s)", kind, name, strings.Join(types, ", "), last)
}

// conditionsTrue reports whether u has all the condition types True, and
// otherwise a description of the conditions it has.
func conditionsTrue(u *unstructured.Unstructured, types ...string) (bool, string) {
	conds, _ := fieldpath.Pave(u.Object).GetValue("status.conditions")
	list, _ := conds.([]any)
	status := map[string]string{}
	var desc []string
	for _, c := range list {
		m, _ := c.(map[string]any)
		t, _ := m["type"].(string)
		s, _ := m["status"].(string)
		status[t] = s
		desc = append(desc, fmt.Sprintf("%s=%s %v: %v", t, s, m["reason"], m["message"]))
	}
	for _, t := range types {
		if status[t] != "True" {
			return false, strings.Join(desc, "; ")
		}
	}
	return true, ""
}

func (c *Cluster) waitCRD(ctx context.Context, name string, timeout time.Duration) error {
	return c.WaitConditions(ctx, "apiextensions.k8s.io/v1", "CustomResourceDefinition", "", name, timeout, "Established")
}

// secretData waits until the Secret has non-empty values for keys (Crossplane
// creates some Secrets empty and fills them a moment later) and returns it.
func (c *Cluster) secretData(ctx context.Context, namespace, name string, timeout time.Duration, keys ...string) (map[string][]byte, error) {
	var data map[string][]byte
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if err := c.Client.Get(ctx, nsName(namespace, name), s); err != nil {
			return false, nil //nolint:nilerr // Not there yet: poll retries.
		}
		for _, k := range keys {
			if len(s.Data[k]) == 0 {
				return false, nil
			}
		}
		data = s.Data
		return true, nil
	})
	return data, errors.Wrapf(err, "Secret %s/%s did not get %s", namespace, name, strings.Join(keys, ", "))
}

func nsName(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}

func writeFiles(dir string, data map[string][]byte, keys ...string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return errors.Wrapf(err, "cannot create %q", dir)
	}
	for _, k := range keys {
		if err := os.WriteFile(filepath.Join(dir, k), data[k], 0o600); err != nil {
			return errors.Wrapf(err, "cannot write %q", k)
		}
	}
	return nil
}

func appendFile(file string, b []byte) error {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // Best effort log.
	_, err = f.Write(b)
	return err
}

// waitListening waits until addr accepts TCP connections, failing early if p
// exits.
func waitListening(ctx context.Context, p *process.Process, addr string) error {
	err := wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(context.Context) (bool, error) {
		if !p.Running() {
			return false, errors.Errorf("%s exited:\n%s", p.Name, p.Tail(3000))
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false, nil //nolint:nilerr // Not there yet: poll retries.
		}
		_ = conn.Close()
		return true, nil
	})
	return errors.Wrapf(err, "%s is not listening on %s", p.Name, addr)
}
