// Command coordinator runs in every pod of an instance with replicas, beside
// redis-server and Sentinel (see internal/coordinator).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/coordinator"
	"github.com/ai-decenter/redishttp/internal/version"
)

// CLI of the coordinator.
type CLI struct {
	Version       version.Flag  `help:"Print the version and exit."`
	Debug         bool          `help:"Emit debug logs."                                                           short:"d"`
	Instance      string        `help:"Name of the instance."                                                      required:""`
	Namespace     string        `help:"Namespace of the instance."                                                 required:""`
	ClusterDomain string        `default:"cluster.local"                                                           help:"DNS domain of Services."`
	Pod           string        `env:"HOSTNAME"                                                                    help:"Name of this pod (the kubelet sets HOSTNAME to it)." required:""`
	Password      string        `env:"REDIS_PASSWORD"                                                              help:"Password of Redis and Sentinel."      required:""`
	Period        time.Duration `default:"500ms"                                                                   help:"How often to look at every pod."`
	TokenDir      string        `default:"/var/run/secrets/kubernetes.io/serviceaccount"                           help:"Directory holding the service-account token and ca.crt."`
	APIServer     string        `env:"KUBERNETES_SERVICE_HOST"                                                     help:"Host of the API server."             required:""`
	APIPort       string        `default:"443"                                                                     env:"KUBERNETES_SERVICE_PORT"              help:"Port of the API server."`
	Restored      bool          `help:"The instance was created from a backup, which only pod 0 restores: an empty pod is never elected first master while a pod does not answer."`
}

// Run the coordinator until SIGTERM.
func (c *CLI) Run() error {
	log := zap.New(zap.UseDevMode(c.Debug)).WithName("coordinator")
	self, err := ordinal(c.Pod, contract.StatefulSetName(c.Instance))
	if err != nil {
		return err
	}
	cfg := &rest.Config{
		Host:            "https://" + net.JoinHostPort(c.APIServer, c.APIPort),
		BearerTokenFile: filepath.Join(c.TokenDir, "token"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(c.TokenDir, "ca.crt")},
		Timeout:         5 * time.Second,
		UserAgent:       "redishttp-coordinator",
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("cannot create a Kubernetes client: %w", err)
	}
	host := func(i int) string { return contract.PodHost(c.Instance, c.Namespace, i, c.ClusterDomain) }
	co := coordinator.New(coordinator.Options{
		Self:          self,
		Addr:          func(i int) string { return net.JoinHostPort(host(i), strconv.Itoa(contract.RedisPort)) },
		SentinelAddr:  func(i int) string { return net.JoinHostPort(host(i), strconv.Itoa(contract.SentinelPort)) },
		LocalRedis:    net.JoinHostPort("127.0.0.1", strconv.Itoa(contract.RedisPort)),
		LocalSentinel: net.JoinHostPort("127.0.0.1", strconv.Itoa(contract.SentinelPort)),
		Password:      c.Password,
		Restored:      c.Restored,
	}, &coordinator.Pods{Client: cs, Namespace: c.Namespace, Instance: c.Instance}, log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log.Info("Coordinating", "version", version.Version, "instance", c.Instance, "namespace", c.Namespace, "ordinal", self)
	co.Run(ctx, c.Period)
	return nil
}

// ordinal is the ordinal of a StatefulSet's pod from its name.
func ordinal(pod, sts string) (int, error) {
	s, ok := strings.CutPrefix(pod, sts+"-")
	n, err := strconv.Atoi(s)
	if !ok || err != nil || n < 0 || n >= contract.MaxPods {
		return 0, fmt.Errorf("pod %q is not a pod of StatefulSet %q", pod, sts)
	}
	return n, nil
}

func main() {
	ctx := kong.Parse(&CLI{}, kong.Description("Keeps one pod of a redishttp instance with replicas in its place: Redis, Sentinel and the pod's role label."))
	ctx.FatalIfErrorf(ctx.Run())
}
