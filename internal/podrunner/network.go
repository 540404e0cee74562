package podrunner

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// A pod's network: a network namespace named after its IP, with one end of a
// veth pair (eth0) holding the pod IP and a default route to the host, and a
// host route to the pod IP through the other end. Pods reach each other and
// the host through the host (forwarding is enabled on the pod's host end only).
// The names are derived from the IP, so a leftover of a killed run is found and
// replaced, and RemoveNetwork needs nothing but the IP.

// gatewayIP is the host end's address as every pod sees it (link-local, the
// same on every host end).
const gatewayIP = "169.254.1.1"

// HostIP is the machine's address as every pod sees it (its default
// gateway): a server on the machine listening on all addresses is reached
// there.
const HostIP = gatewayIP

type network struct {
	ip    string
	ns    string
	veth  string
	names []string // the pod's own names, for its /etc/hosts
}

// netnsName and vethName derive names from an IPv4 address; veth names have
// at most 15 characters.
func netnsName(ip net.IP) string { return "redishttp-" + strings.ReplaceAll(ip.String(), ".", "-") }

func vethName(ip net.IP) string { return fmt.Sprintf("rh%x", []byte(ip.To4())) }

func setupNetwork(ipStr string) (*network, error) {
	ip := net.ParseIP(ipStr).To4()
	if ip == nil {
		return nil, errors.Errorf("pod IP %q is not an IPv4 address", ipStr)
	}
	n := &network{ip: ip.String(), ns: netnsName(ip), veth: vethName(ip)}
	if _, err := os.Stat(filepath.Join("/run/netns", n.ns)); err == nil {
		pids, _ := ipCmd("netns", "pids", n.ns).Output()
		if len(strings.TrimSpace(string(pids))) > 0 {
			return nil, errors.Errorf("pod IP %s is in use by another pod on this machine (network namespace %s has processes)", n.ip, n.ns)
		}
		// Left behind by a run that was killed.
		n.teardown()
	}
	steps := [][]string{
		{"netns", "add", n.ns},
		{"link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.ns},
		{"addr", "add", gatewayIP + "/32", "dev", n.veth},
		{"link", "set", n.veth, "up"},
		{"-n", n.ns, "link", "set", "lo", "up"},
		{"-n", n.ns, "addr", "add", n.ip + "/32", "dev", "eth0"},
		{"-n", n.ns, "link", "set", "eth0", "up"},
		{"-n", n.ns, "route", "add", gatewayIP, "dev", "eth0", "scope", "link"},
		{"-n", n.ns, "route", "add", "default", "via", gatewayIP, "dev", "eth0"},
		{"route", "replace", n.ip + "/32", "dev", n.veth},
	}
	for _, s := range steps {
		if out, err := ipCmd(s...).CombinedOutput(); err != nil {
			n.teardown()
			return nil, errors.Wrapf(err, "cannot set up the network of pod IP %s (needs root): ip %s: %s", n.ip, strings.Join(s, " "), strings.TrimSpace(string(out)))
		}
	}
	// Pod-to-pod traffic enters on one host end and leaves on another; a
	// Service may lead to a loopback address of the host (the API server, the
	// cluster DNS: see cluster/local), as kube-proxy's route_localnet allows.
	for _, sysctl := range []string{"forwarding", "route_localnet"} {
		if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv4/conf", n.veth, sysctl), []byte("1"), 0o600); err != nil {
			n.teardown()
			return nil, errors.Wrapf(err, "cannot set %s for pod IP %s", sysctl, n.ip)
		}
	}
	return n, nil
}

// etcFile is a file of the pod's /etc: `ip netns exec` bind-mounts the
// files of /etc/netns/<namespace>/ over those of /etc for what it runs.
func (n *network) etcFile(name string) string { return filepath.Join("/etc/netns", n.ns, name) }

// writeHosts writes the pod's /etc/hosts as the kubelet does: localhost and
// the pod's own names (other names are the cluster DNS's business).
func (n *network) writeHosts() error {
	b := "# Kubernetes-managed hosts file (podrunner).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if len(n.names) > 0 {
		b += n.ip + "\t" + strings.Join(n.names, "\t") + "\n"
	}
	return n.writeEtc("hosts", b)
}

// writeResolvConf writes the pod's /etc/resolv.conf for dns (ClusterFirst:
// the cluster's DNS server, its search domains, ndots 5); without dns the
// pod uses the machine's.
func (n *network) writeResolvConf(dns *DNS) error {
	if dns == nil {
		return nil
	}
	b := "nameserver " + dns.Nameserver + "\n"
	if len(dns.Searches) > 0 {
		b += "search " + strings.Join(dns.Searches, " ") + "\n"
	}
	return n.writeEtc("resolv.conf", b+"options ndots:5\n")
}

func (n *network) writeEtc(name, content string) error {
	if err := os.MkdirAll(filepath.Dir(n.etcFile(name)), 0o755); err != nil { //nolint:gosec // /etc/netns is read by every process ip netns exec runs.
		return errors.Wrap(err, "cannot create the pod's /etc/netns directory")
	}
	return errors.Wrapf(os.WriteFile(n.etcFile(name), []byte(content), 0o644), "cannot write the pod's /etc/%s", name) //nolint:gosec // Names and addresses, no secrets.
}

// ipCmd runs ip(8). Its arguments are names derived from a pod IP.
func ipCmd(args ...string) *exec.Cmd {
	return exec.CommandContext(context.Background(), "ip", args...) //nolint:gosec // Names derived from a pod IP, not input.
}

// exec returns argv run inside the pod's network namespace.
func (n *network) exec(argv []string) []string {
	return append([]string{"ip", "netns", "exec", n.ns}, argv...)
}

func (n *network) teardown() {
	// Deleting the namespace deletes eth0, its peer and the host route.
	_ = ipCmd("netns", "del", n.ns).Run()
	_ = os.RemoveAll(filepath.Dir(n.etcFile("hosts")))
	_ = ipCmd("link", "del", n.veth).Run()
	if _, err := exec.LookPath("nft"); err == nil {
		_ = nftCmd("", "delete", "table", "netdev", n.cutTable()).Run()
	}
}

// RemoveNetwork removes what a pod with IP ip left of its network, for
// example after the process that ran it was killed.
func RemoveNetwork(ip string) {
	p := net.ParseIP(ip).To4()
	if p == nil {
		return
	}
	(&network{ip: p.String(), ns: netnsName(p), veth: vethName(p)}).teardown()
}
