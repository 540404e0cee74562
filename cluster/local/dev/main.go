// Command dev runs the local control plane of `make dev` in the background and
// stops it again (`make dev-down`). See package cluster/local.
//
//	dev up   --dir _output/dev --mode claim   # start, install, print how to use it
//	dev down --dir _output/dev                # stop every process it started, newest first
//	dev down --dir _output/dev --purge        # and delete its directory (tenant data, cluster objects)
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
)

type upCmd struct {
	Dir     string        `default:"_output/dev" help:"State directory: kubeconfig, logs, pid files."`
	Mode    string        `default:"claim"       enum:"claim,namespaced" help:"claim (v1 LegacyCluster XRD with claims) or namespaced (v2 XRD)."`
	Tools   string        `env:"REDISHTTP_TOOLS_BIN" help:"PATH-like list of tool directories (hack/tools.sh path)." required:""`
	Example string        `default:"examples/instance/redishttpinstance.yaml" help:"Instance to create in team-a once up; empty for none."`
	Debug   bool          `help:"Run the function and provider with --debug."`
	Timeout time.Duration `default:"15m" help:"How long to wait for the control plane."`
	Serve   bool          `hidden:""     help:"Run in the foreground (what up starts in the background)."`
}

const (
	readyFile  = "ready"
	failedFile = "failed"
)

func (c *upCmd) Run() error {
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return err
	}
	if c.Serve {
		return c.serve(dir)
	}
	if pids, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid")); len(pids) > 0 {
		return fmt.Errorf("a control plane seems to run in %s already (make dev-down first)", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, "dev.log"))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"up", "--serve", "--dir=" + dir, "--mode=" + c.Mode, "--example=" + c.Example, "--timeout=" + c.Timeout.String()}
	if c.Debug {
		args = append(args, "--debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "REDISHTTP_TOOLS_BIN="+c.Tools)
	// Its own session: it outlives make and the terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(os.Stdout, "starting the local control plane in the background (log: %s)\n", log.Name())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	printed := 0
	for {
		printed = follow(log.Name(), printed)
		if b, err := os.ReadFile(filepath.Join(dir, readyFile)); err == nil {
			_, _ = fmt.Fprint(os.Stdout, "\n"+string(b))
			return nil
		}
		if b, err := os.ReadFile(filepath.Join(dir, failedFile)); err == nil {
			time.Sleep(200 * time.Millisecond)
			follow(log.Name(), printed)
			return fmt.Errorf("the control plane did not come up: %s", b)
		}
		select {
		case err := <-exited:
			follow(log.Name(), printed)
			return fmt.Errorf("the control plane exited: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// follow prints what was appended to file since offset and returns the new
// offset.
func follow(file string, offset int) int {
	b, err := os.ReadFile(file)
	if err != nil || len(b) <= offset {
		return offset
	}
	_, _ = fmt.Fprint(os.Stdout, string(b[offset:]))
	return len(b)
}

func (c *upCmd) serve(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o750); err != nil {
		return err
	}
	// The supervisor (registry, provisioner, pod runner) is stopped last.
	if err := os.WriteFile(filepath.Join(dir, "pids", "000-dev.pid"), []byte(fmt.Sprintln(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, "pids", "000-dev.pid")) //nolint:errcheck // Best effort.
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		_, _ = fmt.Fprintf(os.Stdout, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
	startCtx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cl, err := local.Start(startCtx, local.Options{
		Dir: dir, RepoRoot: root, ToolDirs: filepath.SplitList(c.Tools), Mode: local.Mode(c.Mode), Logf: logf, Debug: c.Debug,
	})
	if err == nil {
		// Service names resolve in the developer's shell, so a connection
		// Secret's url and UPSTASH_REDIS_REST_URL work as they are.
		defer cl.PublishServiceNames(ctx, local.HostsFile)()
	}
	if err == nil && c.Example != "" {
		var ex *local.Example
		ex, err = example(startCtx, cl, c.Example)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, readyFile), []byte(cl.Summary(ex)), 0o600)
		}
	} else if err == nil {
		err = os.WriteFile(filepath.Join(dir, readyFile), []byte(cl.Summary(nil)), 0o600)
	}
	if err != nil {
		_ = os.WriteFile(filepath.Join(dir, failedFile), []byte(err.Error()), 0o600)
		logf("failed: %v", err)
		logf("left running for inspection (KUBECONFIG=%s, logs in %s/logs); make dev-down stops it", filepath.Join(dir, "kubeconfig"), dir)
	}
	<-ctx.Done()
	logf("stopping")
	cl.Stop()
	return nil
}

// example creates the example instance in team-a, waits until it is Ready,
// its Redis answers with the password from the connection Secret and, when
// it has an HTTP gateway, a SET over HTTP with the Secret's REST token
// succeeds; it returns how to reach both.
func example(ctx context.Context, cl *local.Cluster, file string) (*local.Example, error) {
	objs, err := local.ReadManifests(file)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if err := cl.EnsureNamespace(ctx, o.GetNamespace(), map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
			return nil, err
		}
	}
	if err := cl.Apply(ctx, objs...); err != nil {
		return nil, err
	}
	o := objs[0]
	if err := cl.WaitInstanceReady(ctx, o.GetNamespace(), o.GetName(), 3*time.Minute); err != nil {
		return nil, err
	}
	secret, _, _ := unstructured.NestedString(o.Object, "spec", "writeConnectionSecretToRef", "name")
	ex := &local.Example{Namespace: o.GetNamespace(), Secret: secret}
	if ex.RedisURL, err = cl.RedisURL(ctx, o.GetNamespace(), secret); err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(ex.RedisURL)
	if err != nil {
		return nil, err
	}
	rc := redis.NewClient(opt)
	defer rc.Close() //nolint:errcheck // Best effort.
	if err := retry(ctx, func() error {
		pong, err := rc.Ping(ctx).Result()
		if err == nil && pong != "PONG" {
			err = fmt.Errorf("PING answered %q", pong)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("redis at %s does not answer: %w", opt.Addr, err)
	}
	if ex.RESTURL, ex.RESTToken, err = cl.RESTEndpoint(ctx, o.GetNamespace(), secret, o.GetName()); err != nil {
		return ex, err
	}
	if ex.RESTURL != "" {
		if err := retry(ctx, func() error { return restSet(ctx, ex.RESTURL, ex.RESTToken) }); err != nil {
			return nil, fmt.Errorf("the gateway at %s does not answer: %w", ex.RESTURL, err)
		}
	}
	verbatim(ctx, cl, ex)
	return ex, nil
}

// verbatim switches ex to the connection Secret's own url and
// UPSTASH_REDIS_REST_URL once they work from this machine as they are (their
// cluster names resolve through the hosts file PublishServiceNames keeps):
// what a developer copies from the Secret then works unedited. Otherwise ex
// keeps the endpoint addresses, which always do.
func verbatim(ctx context.Context, cl *local.Cluster, ex *local.Example) {
	s := &corev1.Secret{}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ex.Namespace, Name: ex.Secret}, s); err != nil {
		return
	}
	opt, err := redis.ParseURL(string(s.Data["url"]))
	if err != nil {
		return
	}
	rc := redis.NewClient(opt)
	defer rc.Close() //nolint:errcheck // Best effort.
	if err := retry(ctx, func() error { return rc.Ping(ctx).Err() }); err != nil {
		return
	}
	ex.RedisURL, ex.Verbatim = string(s.Data["url"]), true
	if rest := string(s.Data[contract.KeyRESTURL]); rest != "" && ex.RESTURL != "" {
		if err := retry(ctx, func() error { return restSet(ctx, rest, ex.RESTToken) }); err == nil {
			ex.RESTURL = rest
		}
	}
}

// restSet runs what the printed curl line runs.
func restSet(ctx context.Context, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/", strings.NewReader(`["SET","hello","world"]`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer rsp.Body.Close() //nolint:errcheck // Read-only.
	b, _ := io.ReadAll(io.LimitReader(rsp.Body, 1024))
	if rsp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"OK"`) {
		return fmt.Errorf("status %d: %s", rsp.StatusCode, b)
	}
	return nil
}

// retry calls fn until it succeeds, for up to 30 seconds.
func retry(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type downCmd struct {
	Dir   string `default:"_output/dev" help:"State directory of the control plane."`
	Purge bool   `help:"Also delete the directory: the tenants' data in its volumes and the cluster's objects."`
}

func (c *downCmd) Run() error {
	err := local.StopPidFiles(filepath.Join(c.Dir, "pids"), 15*time.Second, func(format string, args ...any) {
		_, _ = fmt.Fprintf(os.Stdout, format+"\n", args...)
	})
	local.RemoveAddresses(c.Dir)
	if abs, aerr := filepath.Abs(c.Dir); aerr == nil {
		// Normally gone with the supervisor; left behind if it crashed.
		if rerr := local.RemoveServiceNames(local.HostsFile, abs); rerr != nil {
			_, _ = fmt.Fprintln(os.Stdout, rerr)
		}
	}
	if err != nil {
		return err
	}
	if c.Purge {
		if err := local.Purge(c.Dir); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(os.Stdout, "deleted %s: the tenants' data and the cluster's objects are gone\n", c.Dir)
		return nil
	}
	left, err := local.LeftoverIn(c.Dir)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(os.Stdout, left.String())
	return nil
}

type cli struct {
	Up   upCmd   `cmd:"" help:"Start the local control plane in the background and install the packages."`
	Down downCmd `cmd:"" help:"Stop every process the control plane started, newest first."`
}

func main() {
	k := kong.Parse(&cli{}, kong.Description("The local redishttp control plane (make dev / make dev-down)."))
	k.FatalIfErrorf(k.Run())
}
