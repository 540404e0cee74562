package local

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// With the pod runner, pod IPs are its business, as they are a kubelet's
// (through its CNI plugin): kwok's pod-running stage sets none, and the
// runner gives each Running pod the next address of its node's podCIDR that
// no pod holds, going round the range. A recreated pod so gets a new IP, as
// on a real cluster (kwok hands a freed address to the next pod at once).

// An ipAllocator hands out pod IPs per node; guarded by podRunner.mu.
type ipAllocator struct {
	cidrs map[string]*net.IPNet
	next  map[string]uint32
}

// assignIPs gives every Running pod of a kwok node without an IP one.
func (r *podRunner) assignIPs(ctx context.Context, pods []corev1.Pod) {
	used := map[string]bool{}
	for i := range pods {
		if ip := pods[i].Status.PodIP; ip != "" {
			used[ip] = true
		}
	}
	for i := range pods {
		pod := &pods[i]
		if !strings.HasPrefix(pod.Spec.NodeName, nodePrefix) || pod.DeletionTimestamp != nil || pod.Status.PodIP != "" || pod.Status.Phase != corev1.PodRunning {
			continue
		}
		ip, err := r.ips.allocate(ctx, r.c.Client, pod.Spec.NodeName, used)
		if err != nil {
			r.c.opts.Logf("pod %s/%s: %v", pod.Namespace, pod.Name, err)
			continue
		}
		patch := fmt.Appendf(nil, `{"status":{"podIP":%q,"podIPs":[{"ip":%q}]}}`, ip, ip)
		if err := r.c.Client.Status().Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
			continue
		}
		used[ip] = true
	}
}

func (a *ipAllocator) allocate(ctx context.Context, c client.Client, node string, used map[string]bool) (string, error) {
	cidr := a.cidrs[node]
	if cidr == nil {
		n := &corev1.Node{}
		if err := c.Get(ctx, types.NamespacedName{Name: node}, n); err != nil {
			return "", errors.Wrapf(err, "cannot get node %q", node)
		}
		_, ipnet, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil || ipnet.IP.To4() == nil {
			return "", errors.Errorf("node %q has no IPv4 podCIDR (%q)", node, n.Spec.PodCIDR)
		}
		cidr = ipnet
		a.cidrs[node] = cidr
	}
	ones, bits := cidr.Mask.Size()
	size := uint32(1) << (bits - ones)
	base := binary.BigEndian.Uint32(cidr.IP.To4())
	for range size {
		// Skip the network and broadcast addresses.
		off := 1 + a.next[node]%(size-2)
		a.next[node]++
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, base+off)
		s := ip.String()
		// A stopping pod may still hold the address's network namespace.
		if _, err := os.Stat("/run/netns/" + "redishttp-" + strings.ReplaceAll(s, ".", "-")); used[s] || err == nil {
			continue
		}
		return s, nil
	}
	return "", errors.Errorf("node %q has no free pod IP", node)
}
