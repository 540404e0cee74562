package apikey

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ai-decenter/redishttp/apis"
	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/controller/config"
	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/crossplane-runtime/v2/pkg/controller"
	"github.com/crossplane/crossplane-runtime/v2/pkg/feature"
	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
	"github.com/crossplane/crossplane-runtime/v2/pkg/ratelimiter"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

const adminPassword = "admin-password-for-tests"

// A harness is a real kube-apiserver and etcd, the provider's controllers
// running in-process against them, and a real redis-server, which the
// default ClusterProviderConfig points every instance at.
type harness struct {
	cp    *testenv.ControlPlane
	kube  client.Client
	redis *testenv.Redis
	admin *goredis.Client

	scheme *runtime.Scheme
	opts   harnessOptions
	// requests counts the provider's requests to the API server.
	requests *requests
	// verified counts the ApiKeys the provider found up to date.
	verified *verified
	// stop stops the provider.
	stop func()
}

type harnessOptions struct {
	pollInterval time.Duration
	rate         int
	// exactRate lets exactly rate reconciles a second through, instead of
	// a burst of ten seconds' worth first.
	exactRate bool
	config    Config
	// crds is where the provider's CRDs are; package/provider/crds when
	// empty.
	crds string
	// before runs before the provider starts, with a client of the API
	// server.
	before func(kube client.Client)
}

func startHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: integration test (real kube-apiserver, etcd and redis-server) in -short mode")
	}
	// DEBUG is enabled so that it is the ACL, not the server config, that refuses it.
	r := testenv.StartRedis(t, "--requirepass", adminPassword, "--enable-debug-command", "yes")

	if o.crds == "" {
		o.crds = filepath.Join("..", "..", "..", "package", "provider", "crds")
	}
	cp := testenv.StartControlPlane(t, o.crds, testenv.WriteInstanceCRD(t))

	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apis.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	kube, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	if o.before != nil {
		o.before(kube)
	}
	h := &harness{cp: cp, kube: kube, redis: r, scheme: s, opts: o, requests: &requests{}, verified: &verified{}}
	h.stop = h.startProvider(t)
	t.Cleanup(func() { h.stop() })

	h.admin = goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: adminPassword, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = h.admin.Close() })

	h.create(t, &v1alpha1.ClusterProviderConfig{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultProviderConfigName},
		Spec:       v1alpha1.ProviderConfigSpec{Instances: v1alpha1.InstanceAccess{AddressOverride: r.Addr}},
	})
	return h
}

// startProvider runs the provider's controllers in a new manager, as a
// provider pod does, until the returned function stops it.
func (h *harness) startProvider(t testing.TB) func() {
	t.Helper()
	o := h.opts
	cfg := ratelimiter.LimitRESTConfig(h.cp.Config, o.rate)
	cfg.Wrap(h.requests.wrap)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: h.scheme,
		// As cmd/provider configures it.
		Cache:   cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: {Label: RedisPods()}}},
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Several harnesses run in one test binary: controller names
		// repeat.
		Controller: ctrlconfig.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatalf("cannot create manager: %v", err)
	}
	// REDISHTTP_TEST_DEBUG=1 shows the reconcilers' debug logs.
	zl := zap.New(zap.WriteTo(io.Discard))
	if os.Getenv("REDISHTTP_TEST_DEBUG") == "1" {
		zl = zap.New(zap.UseDevMode(true))
	}
	ctrl.SetLogger(zl)
	global := ratelimiter.NewGlobal(o.rate)
	if o.exactRate {
		global = &ratelimiter.BucketRateLimiter{Limiter: rate.NewLimiter(rate.Limit(o.rate), 1)}
	}
	opts := controller.Options{
		Logger:                  logging.NewLogrLogger(logr.New(h.verified.sink(zl.GetSink()))),
		PollInterval:            o.pollInterval,
		MaxConcurrentReconciles: o.rate,
		GlobalRateLimiter:       global,
		Features:                &feature.Flags{},
	}
	opts.Features.Enable(feature.EnableBetaManagementPolicies)
	if err := config.Setup(mgr, opts); err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, opts, o.config); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager stopped: %v", err)
		}
	}()
	return sync.OnceFunc(func() { cancel(); <-done })
}

// restartProvider stops the provider and starts a new one, which knows
// nothing but what the API server and Redis hold.
func (h *harness) restartProvider(t testing.TB) {
	t.Helper()
	h.stop()
	h.stop = h.startProvider(t)
}

func (h *harness) create(t testing.TB, o client.Object) {
	t.Helper()
	if err := h.kube.Create(context.Background(), o); err != nil {
		t.Fatalf("cannot create %T %q: %v", o, o.GetName(), err)
	}
}

// tenant creates a namespace with a RedisHttpInstance, its status and its
// auth Secret, as the composition function would in claim mode when the
// tenant asked for no connection Secret: the provider must not need one.
func (h *harness) tenant(t testing.TB, ns, instance string) {
	t.Helper()
	h.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	in := &unstructured.Unstructured{}
	in.SetGroupVersionKind(InstanceGroupVersionKind)
	in.SetNamespace(ns)
	in.SetName(instance)
	// The stand-in CRD has no status subresource: the status is created
	// with the object.
	in.Object["status"] = map[string]any{"endpoint": contract.ServiceHost(instance, ns, contract.DefaultClusterDomain), "port": int64(contract.RedisPort), "phase": "Ready"}
	h.create(t, in)
	h.create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: contract.AuthSecretName(instance)},
		StringData: map[string]string{
			contract.AuthPasswordKey: adminPassword,
			contract.AuthFileKey:     "requirepass " + adminPassword + "\n",
		},
	})
}

func apiKey(ns, name string, p v1alpha1.ApiKeyParameters) *v1alpha1.ApiKey {
	return &v1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ApiKeySpec{
			ManagedResourceSpec: xpv2.ManagedResourceSpec{
				WriteConnectionSecretToReference: &xpv2.LocalSecretReference{Name: name + "-redis"},
			},
			ForProvider: p,
		},
	}
}

func (h *harness) get(t testing.TB, ns, name string) *v1alpha1.ApiKey {
	t.Helper()
	ak := &v1alpha1.ApiKey{}
	if err := h.kube.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ak); err != nil {
		t.Fatalf("cannot get ApiKey %q: %v", name, err)
	}
	return ak
}

// update changes an ApiKey's spec the way a user would, retrying when the
// provider wrote the object in between.
func (h *harness) update(t testing.TB, ns, name string, mutate func(*v1alpha1.ApiKey)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ak := h.get(t, ns, name)
		mutate(ak)
		return h.kube.Update(context.Background(), ak)
	})
	if err != nil {
		t.Fatalf("cannot update ApiKey %q: %v", name, err)
	}
}

func (h *harness) secret(t testing.TB, ns, name string) map[string]string {
	t.Helper()
	s := &corev1.Secret{}
	if err := h.kube.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatalf("cannot get Secret %q: %v", name, err)
	}
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

// as returns a Redis client authenticated as user with key, against the
// test's redis-server (the Secret's endpoint is the in-cluster name).
func (h *harness) as(t testing.TB, user, key string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: h.redis.Addr, Username: user, Password: key, Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// authenticates reports whether user and key authenticate.
func (h *harness) authenticates(user, key string) error {
	return h.authenticatesOn(h.redis.Addr, user, key)
}

// authenticatesOn reports whether user and key authenticate on the Redis at
// addr.
func (h *harness) authenticatesOn(addr, user, key string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, Username: user, Password: key, Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
	defer c.Close()
	return c.Ping(context.Background()).Err()
}

func isNoPerm(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

func ready(ak *v1alpha1.ApiKey) error {
	if c := ak.GetCondition(xpv2.TypeReady); c.Status != corev1.ConditionTrue {
		return errorf("ApiKey %q is not Ready: %+v", ak.GetName(), ak.Status)
	}
	return nil
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
