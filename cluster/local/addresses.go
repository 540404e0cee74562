package local

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ai-decenter/redishttp/internal/podrunner"
)

// Each running pod has its own network namespace holding its IP (from
// 198.18.0.0/16, RFC 2544, never routed; the API server refuses loopback
// addresses in EndpointSlices); see internal/podrunner. This needs root. The
// IPs of running pods are listed in <dir>/addresses so `make dev-down` removes
// their networks even after a crash.

const addressesFile = "addresses"

func (c *Cluster) recordAddress(ip string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := filepath.Join(c.opts.Dir, addressesFile)
	b, _ := os.ReadFile(f)
	if slices.Contains(strings.Fields(string(b)), ip) {
		return nil
	}
	return appendFile(f, []byte(ip+"\n"))
}

func (c *Cluster) forgetAddress(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := filepath.Join(c.opts.Dir, addressesFile)
	b, _ := os.ReadFile(f)
	var keep []string
	for l := range strings.FieldsSeq(string(b)) {
		if l != ip {
			keep = append(keep, l)
		}
	}
	_ = os.WriteFile(f, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
}

// RemoveAddresses removes the pod networks and the Services' nftables table
// a control plane in dir left behind.
func RemoveAddresses(dir string) {
	removeNetTable(dir)
	b, _ := os.ReadFile(filepath.Join(dir, addressesFile))
	for ip := range strings.FieldsSeq(string(b)) {
		if strings.HasPrefix(ip, "198.18.") {
			podrunner.RemoveNetwork(ip)
		}
	}
	_ = os.Remove(filepath.Join(dir, addressesFile))
}
