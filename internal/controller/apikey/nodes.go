package apikey

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Redis does not replicate ACL users: an instance with replicas needs every
// ApiKey's user on every one of its Redis pods, so that a key works on
// whichever pod is the master, at once after a failover.

// A instancePod is one Redis pod of an instance with replicas.
type instancePod struct {
	// name of the pod.
	name string
	// address the provider dials, host:port.
	address string
	// ready is the pod's Ready condition. Users are made and updated on
	// ready pods; a pod that is not ready gets them when it turns ready
	// (see restarts). Deleting a user waits for every pod.
	ready bool
}

// A node is one Redis an ApiKey's user must be on.
type node struct {
	// pod is the Redis pod, or "" for an instance with one Redis, or a
	// Redis of the tenant's own, dialled at one address.
	pod   string
	acl   redis.ACL
	ready bool
}

// wrap adds which pod an error came from, when there are several.
func (n node) wrap(err error) error {
	if errors.Is(err, redis.ErrBusy) {
		// Another reconcile is waiting on this Redis for this one (a
		// provider that starts reads a thousand keys at once, and a
		// snapshot at a time): nothing is wrong with this key, which is
		// retried without a condition or an event, as a conflict is. A
		// Redis that does not answer fails the request waiting on it,
		// which says so.
		return kerrors.NewConflict(schema.GroupResource{Group: v1alpha1.Group, Resource: "apikeys"}, n.pod, err)
	}
	if err == nil || n.pod == "" {
		return err
	}
	return errors.Wrapf(err, "pod %q", n.pod)
}

// describe adds which pod a difference is on, when there are several.
func (n node) describe(diff []string) []string {
	if n.pod == "" {
		return diff
	}
	out := make([]string, len(diff))
	for i, d := range diff {
		out[i] = "pod " + strconv.Quote(n.pod) + ": " + d
	}
	return out
}

// instancePods returns the Redis pods of an instance with more than one,
// sorted by name; none for an instance with one pod, which is dialled at its
// Service as before, or when the provider dials every instance at one
// address.
func instancePods(ctx context.Context, pods client.Reader, ns, instance string, a admin, ia v1alpha1.InstanceAccess) ([]instancePod, error) {
	ps, err := redisPods(ctx, pods, ns, instance, a, ia)
	if err != nil || len(ps) < 2 {
		return nil, err
	}
	return ps, nil
}

// redisPods returns the Redis pods of an instance from the provider's cache
// of Redis pods (see RedisPods), sorted by name; none when the provider may
// not list pods or dials every instance at one address.
func redisPods(ctx context.Context, pods client.Reader, ns, instance string, a admin, ia v1alpha1.InstanceAccess) ([]instancePod, error) {
	if pods == nil || ia.AddressOverride != "" {
		return nil, nil
	}
	l := &corev1.PodList{}
	if err := pods.List(ctx, l, client.InNamespace(ns), client.MatchingLabels(contract.PodSelector(instance))); err != nil {
		return nil, errors.Wrapf(err, "cannot list the Redis pods of RedisHttpInstance %q", instance)
	}
	out := make([]instancePod, 0, len(l.Items))
	for i := range l.Items {
		p := &l.Items[i]
		rp := instancePod{name: p.GetName(), ready: podReady(p) && p.GetDeletionTimestamp() == nil}
		switch ia.Resolve {
		case v1alpha1.ResolveEndpointSlice:
			// Pod IPs, as EndpointSlices hold them: for a provider outside
			// the cluster network that can reach pods.
			if p.Status.PodIP != "" {
				rp.address = net.JoinHostPort(p.Status.PodIP, redisPort(p, a.port))
			}
		default:
			rp.address = podHost(p.GetName(), instance, ns, a)
		}
		out = append(out, rp)
	}
	slices.SortFunc(out, func(a, b instancePod) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// podHost returns the stable DNS name of a pod of the instance, through its
// headless Service, in the cluster domain of the instance's endpoint.
func podHost(pod, instance, ns string, a admin) string {
	domain := contract.DefaultClusterDomain
	if _, d, ok := strings.Cut(a.endpoint, ".svc."); ok && d != "" {
		domain = d
	}
	ordinal, err := strconv.Atoi(strings.TrimPrefix(pod, contract.StatefulSetName(instance)+"-"))
	if err != nil {
		// Not a pod of the StatefulSet: not dialled by name.
		return ""
	}
	return net.JoinHostPort(contract.PodHost(instance, ns, ordinal, domain), a.port)
}

// redisPort returns the pod's Redis container port, or def.
func redisPort(p *corev1.Pod, def string) string {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "redis" && port.ContainerPort > 0 {
				return strconv.Itoa(int(port.ContainerPort))
			}
		}
	}
	return def
}

// nodes returns the Redis servers an ApiKey administered with a lives on.
func (c *connector) nodes(a admin) []node {
	if len(a.pods) == 0 {
		return []node{{acl: c.acl(a.creds), ready: true}}
	}
	ns := make([]node, 0, len(a.pods))
	for _, p := range a.pods {
		n := node{pod: p.name, ready: p.ready}
		if p.address == "" {
			n.acl = unreachable{}
		} else {
			creds := a.creds
			creds.Address = p.address
			n.acl = c.acl(creds)
		}
		ns = append(ns, n)
	}
	return ns
}

// unreachable is the ACL of a pod the provider has no address for yet.
type unreachable struct{}

func (unreachable) err() error { return errors.New("cannot reach Redis: the pod has no address yet") }

func (u unreachable) GetUser(context.Context, string) (*redis.User, bool, error) {
	return nil, false, u.err()
}
func (u unreachable) SetUser(context.Context, string, redis.Rules) error { return u.err() }
func (u unreachable) DeleteUser(context.Context, string) error           { return u.err() }
func (u unreachable) Commands(context.Context, redis.Rules) (string, error) {
	return "", u.err()
}
