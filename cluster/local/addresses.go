package local

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Pods listen on their own IP. Those come from 198.18.0.0/15 (the API server
// refuses loopback addresses in EndpointSlices), so the pod runner adds each
// running pod's IP to the loopback interface, as a /32, and removes it when
// the pod stops. This needs root or CAP_NET_ADMIN. The addresses in use are
// listed in <dir>/addresses so `make dev-down` removes them even after a crash.

const addressesFile = "addresses"

func (c *Cluster) addAddress(ip string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := filepath.Join(c.opts.Dir, addressesFile)
	b, _ := os.ReadFile(f)
	ours := slices.Contains(strings.Fields(string(b)), ip)
	out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput()
	switch {
	case err == nil:
	case strings.Contains(string(out), "File exists") && ours:
		return nil // Our own pod, restarted.
	case strings.Contains(string(out), "File exists") && inUse(ip):
		// A live control plane on this machine serves a pod there; recording
		// it as ours would make our teardown remove their pod's address.
		return errors.Errorf("pod IP %s is in use by another local control plane (make dev-down stops one started by make dev)", ip)
	case strings.Contains(string(out), "File exists"):
		// Left behind by a run that was killed: adopt it.
	default:
		return errors.Wrapf(err, "cannot add pod IP %s to the loopback interface (needs root or CAP_NET_ADMIN): %s", ip, strings.TrimSpace(string(out)))
	}
	if ours {
		return nil
	}
	return appendFile(f, []byte(ip+"\n"))
}

// inUse reports whether something answers on the pod port of ip.
func inUse(ip string) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "6379"), 300*time.Millisecond)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func (c *Cluster) delAddress(ip string) {
	_ = exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run()
	c.mu.Lock()
	defer c.mu.Unlock()
	f := filepath.Join(c.opts.Dir, addressesFile)
	b, _ := os.ReadFile(f)
	var keep []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if l != "" && l != ip {
			keep = append(keep, l)
		}
	}
	_ = os.WriteFile(f, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
}

// RemoveAddresses removes the pod IPs a control plane in dir left on the
// loopback interface.
func RemoveAddresses(dir string) {
	b, _ := os.ReadFile(filepath.Join(dir, addressesFile))
	for ip := range strings.FieldsSeq(string(b)) {
		if strings.HasPrefix(ip, "198.18.") || strings.HasPrefix(ip, "198.19.") {
			_ = exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run()
		}
	}
	_ = os.Remove(filepath.Join(dir, addressesFile))
}
