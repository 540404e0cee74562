package apikey

import (
	"context"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	kmeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/fieldpath"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// InstanceGroupVersionKind is the tenant instance an ApiKey's instanceRef
// names. It is a claim or a namespaced XR depending on how the platform is
// installed; both have this GVK, so it is read as an unstructured object.
var InstanceGroupVersionKind = schema.GroupVersionKind{Group: "redishttp.io", Version: "v1alpha1", Kind: "RedisHttpInstance"}

// defaultPort is Redis's port, for Secrets that do not say.
var defaultPort = strconv.Itoa(contract.RedisPort)

// DefaultProviderConfigName is the ClusterProviderConfig ApiKeys use by
// default. When it does not exist the built-in defaults apply.
const DefaultProviderConfigName = "default"

// An admin says how the provider administers one Redis, and where apps find
// it.
type admin struct {
	// creds dial the Redis as a user allowed to run ACL SETUSER.
	creds redis.Credentials
	// endpoint and port are published to apps; they can differ from the
	// address the provider dials (address override, EndpointSlice).
	endpoint string
	port     string
	// restURL and restURLInCluster are the instance's HTTP gateway, when
	// it has one: published to apps with a REST token for the key.
	restURL          string
	restURLInCluster string
	// pods are the Redis pods of an instance with replicas, each of which
	// needs every user; none when the Redis is dialled at creds.Address.
	pods []instancePod
}

// providerConfig returns the settings of the ApiKey's ProviderConfig or
// ClusterProviderConfig: both kinds share one spec and one code path.
func providerConfig(ctx context.Context, kube client.Client, cr *v1alpha1.ApiKey) (v1alpha1.ProviderConfigSpec, error) {
	ref := cr.GetProviderConfigReference()
	if ref == nil {
		ref = &xpv2.ProviderConfigReference{Kind: v1alpha1.ClusterProviderConfigKind, Name: DefaultProviderConfigName}
	}
	switch ref.Kind {
	case v1alpha1.ProviderConfigKind:
		pc := &v1alpha1.ProviderConfig{}
		if err := kube.Get(ctx, types.NamespacedName{Namespace: cr.GetNamespace(), Name: ref.Name}, pc); err != nil {
			return v1alpha1.ProviderConfigSpec{}, errors.Wrapf(err, "cannot get ProviderConfig %q", ref.Name)
		}
		return pc.Spec, nil
	case v1alpha1.ClusterProviderConfigKind, "":
		pc := &v1alpha1.ClusterProviderConfig{}
		err := kube.Get(ctx, types.NamespacedName{Name: ref.Name}, pc)
		if kerrors.IsNotFound(err) && ref.Name == DefaultProviderConfigName {
			// Nothing to configure is a valid configuration: in-cluster DNS.
			return v1alpha1.ProviderConfigSpec{}, nil
		}
		if err != nil {
			return v1alpha1.ProviderConfigSpec{}, errors.Wrapf(err, "cannot get ClusterProviderConfig %q", ref.Name)
		}
		return pc.Spec, nil
	default:
		return v1alpha1.ProviderConfigSpec{}, errors.Errorf("cannot use provider config kind %q: use ProviderConfig or ClusterProviderConfig", ref.Kind)
	}
}

// adminFor returns how to administer the Redis the ApiKey's keys live in. It
// only ever reads objects in the ApiKey's own namespace, and reads Secrets
// with secrets, a reader that does not cache them: a cached read would keep
// every tenant's Secrets in the provider's memory. It reads the Redis pods of
// an instance with pods, nil when the provider may not list pods.
func adminFor(ctx context.Context, kube, secrets, pods client.Reader, cr *v1alpha1.ApiKey, cfg v1alpha1.ProviderConfigSpec) (admin, error) {
	p := cr.Spec.ForProvider
	ns := cr.GetNamespace()
	switch {
	case p.InstanceRef != nil:
		in := &unstructured.Unstructured{}
		in.SetGroupVersionKind(InstanceGroupVersionKind)
		if err := kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: p.InstanceRef.Name}, in); err != nil {
			return admin{}, errors.Wrapf(err, "cannot get RedisHttpInstance %q", p.InstanceRef.Name)
		}
		a, err := adminFromInstance(ctx, secrets, in)
		if err != nil {
			return admin{}, errors.Wrapf(err, "cannot use the auth Secret of RedisHttpInstance %q", p.InstanceRef.Name)
		}
		if a.pods, err = instancePods(ctx, pods, ns, p.InstanceRef.Name, a, cfg.Instances); err != nil || len(a.pods) > 0 {
			return a, err
		}
		addr, err := dialAddress(ctx, kube, pods, ns, p.InstanceRef.Name, a, cfg.Instances)
		if err != nil {
			return admin{}, errors.Wrapf(err, "cannot resolve the address of RedisHttpInstance %q", p.InstanceRef.Name)
		}
		a.creds.Address = addr
		return a, nil
	case p.ConnectionSecretRef != nil:
		return adminFromSecret(ctx, secrets, ns, p.ConnectionSecretRef.Name)
	default:
		return admin{}, errors.New("cannot find the Redis: set spec.forProvider.instanceRef or spec.forProvider.connectionSecretRef")
	}
}

// adminFromInstance returns how to administer an instance: as user default
// with the password of the auth Secret the function composes for every
// instance (contract.AuthSecretName), at the endpoint and port of the instance's
// status. The tenant's connection Secret is not used: in claim mode it only
// exists when the tenant asked for one.
func adminFromInstance(ctx context.Context, secrets client.Reader, in *unstructured.Unstructured) (admin, error) {
	name := contract.AuthSecretName(in.GetName())
	s := &corev1.Secret{}
	if err := secrets.Get(ctx, types.NamespacedName{Namespace: in.GetNamespace(), Name: name}, s); err != nil {
		return admin{}, errors.Wrapf(err, "cannot get Secret %q", name)
	}
	a := admin{creds: redis.Credentials{Username: contract.AdminUser, Password: string(s.Data[contract.AuthPasswordKey])}}
	if a.creds.Password == "" {
		return admin{}, errors.Errorf("cannot use Secret %q: it has no password", name)
	}
	// The function sets the status on its first reconcile; until then the
	// Service's in-cluster name is where it will be.
	pv := fieldpath.Pave(in.Object)
	a.endpoint, _ = pv.GetString("status.endpoint")
	if a.endpoint == "" {
		a.endpoint = contract.ServiceHost(in.GetName(), in.GetNamespace(), contract.DefaultClusterDomain)
	}
	a.port = defaultPort
	if p, err := pv.GetInteger("status.port"); err == nil && p > 0 {
		a.port = strconv.FormatInt(p, 10)
	}
	a.creds.Address = net.JoinHostPort(a.endpoint, a.port)
	a.restURL, _ = pv.GetString(contract.StatusRESTURL)
	a.restURLInCluster, _ = pv.GetString(contract.StatusRESTURLInCluster)
	return a, nil
}

// adminFromSecret reads endpoint, port, username and password from a Secret,
// and the URLs of an HTTP gateway in front of that Redis, if it has them.
func adminFromSecret(ctx context.Context, kube client.Reader, ns, name string) (admin, error) {
	s := &corev1.Secret{}
	if err := kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return admin{}, errors.Wrapf(err, "cannot get Secret %q", name)
	}
	a := admin{
		endpoint:         string(s.Data[contract.KeyEndpoint]),
		port:             string(s.Data[contract.KeyPort]),
		restURL:          string(s.Data[contract.KeyRESTURL]),
		restURLInCluster: string(s.Data[contract.KeyRESTURLInCluster]),
		creds: redis.Credentials{
			Username: string(s.Data[contract.KeyUsername]),
			Password: string(s.Data[contract.KeyPassword]),
			// A tenant's Secret names any server: only the endpoints the
			// platform allows are dialled.
			Restricted: true,
		},
	}
	if a.endpoint == "" {
		return admin{}, errors.Errorf("cannot use Secret %q: it has no endpoint", name)
	}
	if a.port == "" {
		a.port = defaultPort
	}
	if a.creds.Username == "" {
		a.creds.Username = contract.AdminUser
	}
	a.creds.Address = net.JoinHostPort(a.endpoint, a.port)
	return a, nil
}

// dialAddress returns the host:port the provider dials for an instance.
// Resolving pod IPs, it reads the instance's ready pod from pods when the
// provider may list them, and falls back to the Service's EndpointSlices.
// The pod comes first because the pod watch (restarts) heals ApiKeys the
// moment the pod turns ready, before the EndpointSlice controller has
// caught up: read from the slice, that reconcile failed and the heal waited
// for the failed reconcile's backoff (32 s in CI).
func dialAddress(ctx context.Context, kube, pods client.Reader, ns, instance string, a admin, ia v1alpha1.InstanceAccess) (string, error) {
	switch {
	case ia.AddressOverride != "":
		return ia.AddressOverride, nil
	case ia.Resolve == v1alpha1.ResolveEndpointSlice:
		ps, err := redisPods(ctx, pods, ns, instance, a, ia)
		if err != nil {
			return "", err
		}
		for _, p := range ps {
			if p.ready && p.address != "" {
				return p.address, nil
			}
		}
		return endpointSliceAddress(ctx, kube, ns, a)
	default:
		return net.JoinHostPort(a.endpoint, a.port), nil
	}
}

// endpointSliceAddress returns a ready pod address of the Service the
// endpoint names (<service>.<namespace>.svc...), in the ApiKey's namespace.
func endpointSliceAddress(ctx context.Context, kube client.Reader, ns string, a admin) (string, error) {
	svc, _, _ := strings.Cut(a.endpoint, ".")
	l := &discoveryv1.EndpointSliceList{}
	if err := kube.List(ctx, l, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
		return "", errors.Wrapf(err, "cannot list EndpointSlices of Service %q", svc)
	}
	for _, es := range l.Items {
		port := a.port
		if len(es.Ports) > 0 && es.Ports[0].Port != nil {
			port = strconv.Itoa(int(*es.Ports[0].Port))
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) > 0 {
				return net.JoinHostPort(ep.Addresses[0], port), nil
			}
		}
	}
	return "", errors.Errorf("cannot find a ready endpoint of Service %q", svc)
}

// gone reports whether err means the Redis an ApiKey lived in is gone with
// its instance or the Secret holding its admin password, so its ACL user is
// gone too.
func gone(err error) bool {
	return kerrors.IsNotFound(err) || kmeta.IsNoMatchError(err)
}
