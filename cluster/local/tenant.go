package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// InstanceAPIVersion is the tenant-facing API version of RedisHttpInstance.
const InstanceAPIVersion = "redishttp.io/v1alpha1"

// EnsureNamespace creates a namespace with labels, or adds the labels to an
// existing one.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string, labels map[string]string) error {
	ns := &corev1.Namespace{}
	err := c.Client.Get(ctx, nsName("", name), ns)
	if kerrors.IsNotFound(err) {
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		return errors.Wrapf(c.Client.Create(ctx, ns), "cannot create namespace %q", name)
	}
	if err != nil {
		return errors.Wrapf(err, "cannot get namespace %q", name)
	}
	// A merge patch of the labels alone: an update of the copy just read
	// fails with a conflict when a controller wrote the namespace meanwhile.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return errors.Wrapf(err, "cannot label namespace %q", name)
	}
	return errors.Wrapf(c.Client.Patch(ctx, ns, client.RawPatch(types.MergePatchType, patch)), "cannot label namespace %q", name)
}

// ReadManifests reads the objects of a (multi-document) YAML file.
func ReadManifests(file string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, errors.Wrapf(err, "cannot read %q", file)
	}
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, errors.Wrapf(err, "cannot parse %q", file)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// applyRetry is how Apply retries an update that conflicted: 10 tries over
// about 20 s (retry.DefaultRetry's 5 in 50 ms can all lose to a controller
// writing the object while the machine is loaded).
var applyRetry = wait.Backoff{Steps: 10, Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.1}

// Apply creates each object, or sets the given top-level spec fields on it if
// it exists, as `kubectl apply` would for our purposes.
func (c *Cluster) Apply(ctx context.Context, objs ...*unstructured.Unstructured) error {
	for _, o := range objs {
		err := c.Client.Create(ctx, o.DeepCopy())
		if !kerrors.IsAlreadyExists(err) {
			if err != nil {
				return errors.Wrapf(err, "cannot create %s %q", o.GetKind(), o.GetName())
			}
			continue
		}
		// Crossplane writes the object too (status, resourceRef...), many
		// times a second while it rolls a pod: on a conflict read it again
		// and merge again, for seconds if need be.
		err = retry.RetryOnConflict(applyRetry, func() error {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(o.GroupVersionKind())
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
				return errors.Wrapf(err, "cannot get %s %q", o.GetKind(), o.GetName())
			}
			// Merge the fields we set into the live spec: Crossplane adds its own
			// (resourceRef, compositionRef...), which a replace would drop.
			spec, _ := cur.Object["spec"].(map[string]any)
			if spec == nil {
				spec = map[string]any{}
			}
			want, _ := o.Object["spec"].(map[string]any)
			maps.Copy(spec, want)
			cur.Object["spec"] = spec
			return c.Client.Update(ctx, cur)
		})
		if err != nil {
			return errors.Wrapf(err, "cannot update %s %q", o.GetKind(), o.GetName())
		}
	}
	return nil
}

// Get reads an object by apiVersion, kind, namespace and name.
func (c *Cluster) Get(ctx context.Context, apiVersion, kind, namespace, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	err := c.Client.Get(ctx, nsName(namespace, name), u)
	return u, err
}

// WaitInstanceReady waits until the RedisHttpInstance (the claim, or the
// namespaced XR) is Ready and Synced.
func (c *Cluster) WaitInstanceReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	return c.WaitConditions(ctx, InstanceAPIVersion, "RedisHttpInstance", namespace, name, timeout, "Synced", "Ready")
}

// RedisURL returns a redis:// URL a program on this machine can use for the
// instance behind the connection Secret: the Secret's username, password and
// port, with the host its endpoint's Service resolves to (a ready
// EndpointSlice address: a pod IP from the loopback range). This is what
// `kubectl port-forward` would give a user of a real cluster.
func (c *Cluster) RedisURL(ctx context.Context, namespace, secret string) (string, error) {
	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, nsName(namespace, secret), s); err != nil {
		return "", errors.Wrapf(err, "cannot get connection Secret %q", secret)
	}
	endpoint := string(s.Data["endpoint"])
	svc, _, _ := strings.Cut(endpoint, ".")
	host, err := c.ServiceAddress(ctx, namespace, svc)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword(string(s.Data["username"]), string(s.Data["password"])),
		Host: net.JoinHostPort(host, string(s.Data["port"])), Path: "/0"}
	return u.String(), nil
}

// ServiceAddress returns a ready endpoint address of a Service.
func (c *Cluster) ServiceAddress(ctx context.Context, namespace, service string) (string, error) {
	var addr string
	err := wait.PollUntilContextTimeout(ctx, pollInterval, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l := &discoveryv1.EndpointSliceList{}
		if err := c.Client.List(ctx, l, client.InNamespace(namespace), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
			return false, nil //nolint:nilerr // Not there yet: poll retries.
		}
		for _, es := range l.Items {
			for _, ep := range es.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && len(ep.Addresses) > 0 {
					addr = ep.Addresses[0]
					return true, nil
				}
			}
		}
		return false, nil
	})
	return addr, errors.Wrapf(err, "Service %s/%s has no ready endpoint", namespace, service)
}

// An Example is what `make dev` found working for the example instance.
type Example struct {
	// Namespace and Secret name the instance's connection Secret.
	Namespace, Secret string
	// RedisURL is a redis:// URL for redis-cli on this machine.
	RedisURL string
	// RESTURL and RESTToken reach the instance's HTTP gateway from this
	// machine; empty when the instance has none.
	RESTURL, RESTToken string
	// Verbatim is true when RedisURL (and RESTURL) are the connection
	// Secret's own values, working here because the cluster's Service names
	// are published in the hosts file.
	Verbatim bool
}

// RESTEndpoint returns a URL a program on this machine can use for the
// instance's HTTP gateway (its Service's ready endpoint: what `kubectl
// port-forward` would give on a real cluster) and the connection Secret's
// REST token, or empty strings when the Secret has no REST token.
func (c *Cluster) RESTEndpoint(ctx context.Context, namespace, secret, instance string) (string, string, error) {
	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, nsName(namespace, secret), s); err != nil {
		return "", "", errors.Wrapf(err, "cannot get connection Secret %q", secret)
	}
	token := string(s.Data[contract.KeyRESTToken])
	if token == "" {
		return "", "", nil
	}
	host, err := c.ServiceAddress(ctx, namespace, contract.GatewayName(instance))
	if err != nil {
		return "", "", err
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(contract.GatewayPort)), token, nil
}

// Summary is what `make dev` prints once the control plane is up.
func (c *Cluster) Summary(ex *Example) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Local control plane is up (mode %s).\n\n", c.opts.Mode)
	fmt.Fprintf(&b, "  export KUBECONFIG=%s\n", c.Kubeconfig)
	if k, ok := c.tools["kubectl"]; ok {
		fmt.Fprintf(&b, "  export PATH=%s:$PATH   # kubectl v1.36, built by hack/tools.sh\n", filepath.Dir(k))
	}
	fmt.Fprintf(&b, "  kubectl get redishttpinstances -A        # the example instance team-a/cache\n")
	fmt.Fprintf(&b, "  kubectl get pkg; kubectl get managed -A; kubectl -n team-a get sts,svc,cm,secret,pvc\n")
	if ex == nil {
		fmt.Fprintf(&b, "\nLogs: %s/logs   Stop: make dev-down\n", c.opts.Dir)
		return b.String()
	}
	fmt.Fprintf(&b, "  redis-cli -u '%s' ping\n", ex.RedisURL)
	if ex.RESTURL != "" {
		fmt.Fprintf(&b, "  curl -s -H 'Authorization: Bearer %s' -d '[\"SET\",\"hello\",\"world\"]' %s/\n", ex.RESTToken, ex.RESTURL)
	}
	if ex.Verbatim {
		fmt.Fprintf(&b, "\nThe connection Secret's values work from this shell as they are (Service names are in %s\n"+
			"until make dev-down):\n\n  redis-cli -u \"$(kubectl -n %s get secret %s -o jsonpath='{.data.url}' | base64 -d)\" ping\n",
			HostsFile, ex.Namespace, ex.Secret)
	}
	fmt.Fprintf(&b, "\nAn app in %s gets the connection as environment variables", ex.Namespace)
	if ex.RESTURL != "" {
		fmt.Fprintf(&b, " (%s and %s: all @upstash/redis's Redis.fromEnv() needs)", contract.KeyRESTURL, contract.KeyRESTToken)
	}
	fmt.Fprintf(&b, ":\n\n      containers:\n      - name: app\n        envFrom:\n        - secretRef:\n            name: %s\n", ex.Secret)
	fmt.Fprintf(&b, "\nLogs: %s/logs   Stop: make dev-down\n", c.opts.Dir)
	return b.String()
}

// Describe summarises a namespace for failure messages: pods, PVCs, the
// composed workload objects and the latest events.
func (c *Cluster) Describe(ctx context.Context, namespace string) string {
	var b strings.Builder
	pods := &corev1.PodList{}
	if err := c.Client.List(ctx, pods, client.InNamespace(namespace)); err == nil {
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "pod %s: phase=%s node=%q ip=%q\n", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
		}
	}
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := c.Client.List(ctx, pvcs, client.InNamespace(namespace)); err == nil {
		for _, p := range pvcs.Items {
			fmt.Fprintf(&b, "pvc %s: phase=%s volume=%q annotations=%v\n", p.Name, p.Status.Phase, p.Spec.VolumeName, p.Annotations)
		}
	}
	events := &corev1.EventList{}
	if err := c.Client.List(ctx, events, client.InNamespace(namespace)); err == nil {
		items := events.Items
		if len(items) > 20 {
			items = items[len(items)-20:]
		}
		for _, e := range items {
			fmt.Fprintf(&b, "event %s/%s %s: %s\n", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	fmt.Fprintf(&b, "redis pods running: %v\n", c.RunningPods())
	return b.String()
}
