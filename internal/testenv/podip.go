package testenv

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
)

// PodIP returns an IP for a pod a test runs with internal/podrunner: a random
// address of 198.19.0.0/16 (RFC 2544, never routed; the local control plane
// takes its pod ranges from 198.18.0.0/16) that no pod on this machine has.
func PodIP(t testing.TB) string {
	t.Helper()
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(1<<16-2))
		if err != nil {
			t.Fatal(err)
		}
		v := n.Int64() + 1
		ip := fmt.Sprintf("198.19.%d.%d", v>>8, v&0xff)
		if strings.HasSuffix(ip, ".0") || strings.HasSuffix(ip, ".255") {
			continue
		}
		if _, err := os.Stat("/run/netns/redishttp-" + strings.ReplaceAll(ip, ".", "-")); err != nil {
			return ip
		}
	}
	t.Fatal("cannot find a free pod IP")
	return ""
}
