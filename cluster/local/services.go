package local

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ai-decenter/redishttp/internal/podrunner"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// The cluster network, standing in for kube-proxy and CoreDNS. Each control
// plane gets a network index k (0-15): pods take IPs from 198.18.<16k>.0/20,
// Services ClusterIPs from 10.<96+k>.0.0/16 (kubernetes is .0.1, the DNS
// Service kube-system/kube-dns .0.10), and its rules live in the nftables
// table `ip redishttp-<k>`, which also claims the index (creating it fails
// when another control plane on this machine holds it).
//
// A watch on Services and EndpointSlices feeds one snapshot; every change
// rewrites, in one nftables transaction, DNAT rules from each ClusterIP and
// port to the ready endpoints of its EndpointSlices (picked at random per
// connection, as kube-proxy does; the pod's own connections to itself are
// masqueraded), and rejects what has no ready endpoint. The rules apply to
// pods (prerouting) and to this machine's processes (output), so the
// provider, the tests and every pod reach a Service at its ClusterIP. The
// same snapshot answers DNS (dns.go). As with kube-proxy, connections
// established before a change keep their pod.

const (
	// dnsServiceName is the Service pods' resolv.conf points at.
	dnsServiceName      = "kube-dns"
	dnsServiceNamespace = "kube-system"
	// masqMark marks a pod's connection to a Service that leads back to
	// itself: it must leave with the host's address, or the reply would not
	// pass the host to be un-DNATed.
	masqMark = "0x4000"
)

// netTable is the nftables table of network index k.
func netTable(k int) string { return "redishttp-" + strconv.Itoa(k) }

// serviceCIDR, kubernetesIP and dnsIP are the Service addresses of network
// index k.
func serviceCIDR(k int) string  { return fmt.Sprintf("10.%d.0.0/16", 96+k) }
func kubernetesIP(k int) string { return fmt.Sprintf("10.%d.0.1", 96+k) }
func dnsIP(k int) string        { return fmt.Sprintf("10.%d.0.10", 96+k) }

// claimNetwork picks a free network index: with the pod runner, the first
// whose nftables table it can create. It records the table for dev-down.
func (c *Cluster) claimNetwork() error {
	// Random picks first, then every index in turn.
	var order []int
	for range 16 {
		n, err := rand.Int(rand.Reader, big.NewInt(16))
		if err != nil {
			return errors.Wrap(err, "cannot pick a network")
		}
		order = append(order, int(n.Int64()))
	}
	for k := range 16 {
		order = append(order, k)
	}
	if c.opts.NoPods {
		c.netIndex = order[0]
		return nil
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("the pod runner needs nft (nftables) for Services: hack/deps.sh installs it")
	}
	for _, k := range order {
		if claimTable(netTable(k)) {
			c.netIndex = k
			c.onStop(func() { _ = nftRun("delete table ip " + netTable(k) + "\n") })
			return errors.Wrap(os.WriteFile(filepath.Join(c.opts.Dir, netTableFile), []byte(netTable(k)+"\n"), 0o600), "cannot record the network table")
		}
	}
	return errors.New("cannot claim a network: 16 control planes seem to run on this machine (make dev-down removes a stale one's table)")
}

const netTableFile = "nft-table"

// claimTable creates table, noting this process as its owner; a table whose
// owner is gone (a control plane killed without cleaning up) is taken over.
func claimTable(table string) bool {
	create := fmt.Sprintf("create table ip %s { comment \"pid=%d\"; }\n", table, os.Getpid())
	if nftRun(create) == nil {
		return true
	}
	out, err := exec.CommandContext(context.Background(), "nft", "list", "table", "ip", table).Output()
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(out), `comment "pid=`)
	pid, _, _ := strings.Cut(rest, `"`)
	if _, err := strconv.Atoi(pid); !ok || err != nil {
		return false
	}
	if _, err := os.Stat("/proc/" + pid); err == nil {
		return false
	}
	return nftRun("delete table ip "+table+"\n"+create) == nil
}

// removeNetTable removes the nftables table a control plane in dir claimed.
func removeNetTable(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, netTableFile))
	if err != nil {
		return
	}
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "redishttp-") {
		_ = nftRun("delete table ip " + t + "\n")
	}
	_ = os.Remove(filepath.Join(dir, netTableFile))
}

func nftRun(script string) error {
	cmd := exec.CommandContext(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.Errorf("nft: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// A serviceNet is the cluster network of a running control plane.
type serviceNet struct {
	c       *Cluster
	table   string
	cidr    string
	apiPort int
	dns     *dnsServer

	dirty chan struct{}
	svcs  cache.Store
	eps   cache.Store

	mu      sync.RWMutex
	names   map[string][]netip.Addr
	applied string
	synced  time.Time
}

// startServices creates the DNS Service and starts the watch that programs
// Services and answers DNS until Stop.
func (c *Cluster) startServices(ctx context.Context) error {
	port, err := apiPort(c.REST.Host)
	if err != nil {
		return err
	}
	s := &serviceNet{c: c, table: netTable(c.netIndex), cidr: serviceCIDR(c.netIndex), apiPort: port, dirty: make(chan struct{}, 1), names: map[string][]netip.Addr{}}
	if s.dns, err = startDNS(s.lookup); err != nil {
		return err
	}
	c.onStop(s.dns.close)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: dnsServiceName, Namespace: dnsServiceNamespace, Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: corev1.ServiceSpec{ClusterIP: dnsIP(c.netIndex), Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
		}},
	}
	if err := c.Client.Create(ctx, svc); err != nil {
		return errors.Wrap(err, "cannot create the DNS Service")
	}
	cs, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		return errors.Wrap(err, "cannot create a clientset")
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	mark := func() {
		select {
		case s.dirty <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { mark() }, UpdateFunc: func(any, any) { mark() }, DeleteFunc: func(any) { mark() }}
	si, ei := f.Core().V1().Services().Informer(), f.Discovery().V1().EndpointSlices().Informer()
	if _, err := si.AddEventHandler(h); err != nil {
		return errors.Wrap(err, "cannot watch Services")
	}
	if _, err := ei.AddEventHandler(h); err != nil {
		return errors.Wrap(err, "cannot watch EndpointSlices")
	}
	s.svcs, s.eps = si.GetStore(), ei.GetStore()
	stop := make(chan struct{})
	f.Start(stop)
	f.WaitForCacheSync(stop)
	done := make(chan struct{})
	c.onStop(func() { close(stop); <-done; f.Shutdown() })
	c.services = s
	s.sync()
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-s.dirty:
			case <-time.After(10 * time.Second): // Re-apply what a failed nft run missed.
			}
			s.sync()
		}
	}()
	return nil
}

func apiPort(host string) (int, error) {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(host, "https://"))
	if err != nil {
		return 0, errors.Wrapf(err, "cannot parse the API server's address %q", host)
	}
	return strconv.Atoi(port)
}

// A proxyRule sends connections to a Service's ClusterIP and port to one of
// its endpoints (ip:port); none rejects them.
type proxyRule struct {
	IP        string
	Proto     string // tcp or udp
	Port      int32
	Endpoints []string
}

// sync programs the snapshot of Services and EndpointSlices.
func (s *serviceNet) sync() {
	var svcs []*corev1.Service
	for _, o := range s.svcs.List() {
		if svc, ok := o.(*corev1.Service); ok {
			svcs = append(svcs, svc)
		}
	}
	slicesOf := map[string][]*discoveryv1.EndpointSlice{}
	for _, o := range s.eps.List() {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			k := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
			slicesOf[k] = append(slicesOf[k], es)
		}
	}
	names := map[string][]netip.Addr{}
	var rules []proxyRule
	for _, svc := range svcs {
		base := fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, ClusterDomain)
		es := slicesOf[svc.Namespace+"/"+svc.Name]
		headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
		if !headless && svc.Spec.ClusterIP != "" {
			if a, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
				names[base] = []netip.Addr{a}
			}
		}
		if headless {
			names[base] = []netip.Addr{}
		}
		for _, sl := range es {
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
					continue
				}
				a, err := netip.ParseAddr(ep.Addresses[0])
				if err != nil || !headless {
					continue
				}
				names[base] = append(names[base], a)
				if ep.Hostname != nil {
					n := *ep.Hostname + "." + base
					names[n] = append(names[n], a)
				}
			}
		}
		if headless || svc.Spec.ClusterIP == "" {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			r := proxyRule{IP: svc.Spec.ClusterIP, Proto: strings.ToLower(string(sp.Protocol)), Port: sp.Port}
			if r.Proto == "" {
				r.Proto = "tcp"
			}
			switch {
			case svc.Namespace == metav1.NamespaceDefault && svc.Name == "kubernetes":
				r.Endpoints = []string{fmt.Sprintf("127.0.0.1:%d", s.apiPort)}
			case svc.Namespace == dnsServiceNamespace && svc.Name == dnsServiceName:
				r.Endpoints = []string{s.dns.addr}
			default:
				r.Endpoints = endpointsFor(es, sp)
			}
			rules = append(rules, r)
		}
	}
	s.mu.Lock()
	s.names = names
	s.mu.Unlock()
	script := nftRules(s.table, s.cidr, os.Getpid(), rules)
	if script == s.applied {
		return
	}
	if err := nftRun(script); err != nil {
		s.c.opts.Logf("cannot program Services: %v", err)
		return
	}
	s.mu.Lock()
	s.applied, s.synced = script, time.Now()
	s.mu.Unlock()
}

// endpointsFor returns the ready endpoints (ip:port) of a Service port.
func endpointsFor(sls []*discoveryv1.EndpointSlice, sp corev1.ServicePort) []string {
	var out []string
	for _, sl := range sls {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Port != nil && ptrStr(p.Name) == sp.Name && (p.Protocol == nil || *p.Protocol == sp.Protocol || sp.Protocol == "") {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			out = append(out, net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port))))
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func ptrStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// nftRules is the whole table for rules, replacing the previous one in one
// transaction; its comment names the owner process (claimTable).
func nftRules(table, cidr string, owner int, rules []proxyRule) string {
	sort.Slice(rules, func(i, j int) bool {
		a, b := rules[i], rules[j]
		return a.IP+a.Proto+strconv.Itoa(int(a.Port)) < b.IP+b.Proto+strconv.Itoa(int(b.Port))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %[1]s\ndelete table ip %[1]s\ntable ip %[1]s {\n comment \"pid=%[2]d\"\n", table, owner)
	b.WriteString(" chain prerouting {\n  type nat hook prerouting priority dstnat; policy accept;\n  jump services\n }\n")
	b.WriteString(" chain output {\n  type nat hook output priority -100; policy accept;\n  jump services\n }\n")
	fmt.Fprintf(&b, " chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n  meta mark & %[1]s == %[1]s masquerade\n }\n", masqMark)
	// What is still addressed to a ClusterIP after DNAT has no endpoint.
	for _, hook := range []string{"forward", "output"} {
		fmt.Fprintf(&b, " chain reject-%[1]s {\n  type filter hook %[1]s priority filter; policy accept;\n  ip daddr %[2]s reject\n }\n", hook, cidr)
	}
	b.WriteString(" chain services {\n")
	for i, r := range rules {
		if len(r.Endpoints) > 0 {
			fmt.Fprintf(&b, "  ip daddr %s %s dport %d jump svc-%d\n", r.IP, r.Proto, r.Port, i)
		}
	}
	b.WriteString(" }\n")
	for i, r := range rules {
		if len(r.Endpoints) == 0 {
			continue
		}
		fmt.Fprintf(&b, " chain svc-%d {\n", i)
		if len(r.Endpoints) == 1 {
			fmt.Fprintf(&b, "  jump svc-%d-0\n", i)
		} else {
			var vm []string
			for j := range r.Endpoints {
				vm = append(vm, fmt.Sprintf("%d : jump svc-%d-%d", j, i, j))
			}
			fmt.Fprintf(&b, "  numgen random mod %d vmap { %s }\n", len(r.Endpoints), strings.Join(vm, ", "))
		}
		b.WriteString(" }\n")
		for j, ep := range r.Endpoints {
			host, _, _ := net.SplitHostPort(ep)
			fmt.Fprintf(&b, " chain svc-%d-%d {\n", i, j)
			if !strings.HasPrefix(host, "127.") {
				fmt.Fprintf(&b, "  ip saddr %s meta mark set %s\n", host, masqMark)
			}
			fmt.Fprintf(&b, "  meta l4proto %s dnat to %s\n }\n", r.Proto, ep)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// lookup answers a cluster DNS name.
func (s *serviceNet) lookup(name string) ([]netip.Addr, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.names[name]
	return a, ok
}

// podDNS is the resolver configuration of a pod, as the kubelet derives it
// from its dnsPolicy; nil means the machine's.
func (c *Cluster) podDNS(pod *corev1.Pod) *podrunner.DNS {
	switch pod.Spec.DNSPolicy {
	case corev1.DNSDefault:
		return nil
	case corev1.DNSNone:
		if dc := pod.Spec.DNSConfig; dc != nil && len(dc.Nameservers) > 0 {
			return &podrunner.DNS{Nameserver: dc.Nameservers[0], Searches: dc.Searches}
		}
		return nil
	default:
		return &podrunner.DNS{Nameserver: dnsIP(c.netIndex), Searches: []string{
			pod.Namespace + ".svc." + ClusterDomain, "svc." + ClusterDomain, ClusterDomain,
		}}
	}
}

// kubeletEnv is what the kubelet adds to every container's environment: the
// API server's Service.
func (c *Cluster) kubeletEnv() []string {
	ip := kubernetesIP(c.netIndex)
	return []string{
		"KUBERNETES_SERVICE_HOST=" + ip, "KUBERNETES_SERVICE_PORT=443", "KUBERNETES_SERVICE_PORT_HTTPS=443",
		"KUBERNETES_PORT=tcp://" + ip + ":443", "KUBERNETES_PORT_443_TCP=tcp://" + ip + ":443",
		"KUBERNETES_PORT_443_TCP_PROTO=tcp", "KUBERNETES_PORT_443_TCP_PORT=443", "KUBERNETES_PORT_443_TCP_ADDR=" + ip,
	}
}

// Resolver resolves cluster names (Services, a StatefulSet's pods) as a pod
// does, from this machine: ClusterIPs it returns are reachable here too.
func (c *Cluster) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if c.services == nil {
			return nil, errors.New("the cluster network is off (NoPods)")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, c.services.dns.addr)
	}}
}

// DialContext dials addr (host:port, a cluster name or any address) from this
// machine as a pod would: cluster names resolve through the cluster's DNS and
// ClusterIPs lead to a ready endpoint. Hand it to clients (go-redis's
// Options.Dialer) that should follow a Service.
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Resolver: c.Resolver(), Timeout: 5 * time.Second}
	return d.DialContext(ctx, network, addr)
}
