package local

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// portRangeFile holds the kernel's ephemeral port range: where bind to port
// 0 and every outgoing connection take their local port from.
const portRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// freePorts returns n distinct TCP ports on 127.0.0.1, free a moment ago, for
// processes started next to listen on. They are picked at random from the
// 10,000 ports below the kernel's ephemeral range: a port from bind(0) can
// be taken, between this check and the process's own bind, by any of the
// machine's outgoing connections or another test's bind(0) (tests and
// control planes run side by side); a port below the range only by another
// process picking the same one on purpose. Without room below the range the
// kernel picks.
func freePorts(n int) ([]int, error) {
	lo, hi := pickRange(portRangeFile)
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for try := 0; len(out) < n && try < 100*n; try++ {
		p := 0
		if hi > lo {
			p = lo + rand.IntN(hi-lo)
		}
		// Held until all are picked, so the n ports differ.
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		held = append(held, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	if len(out) < n {
		return nil, errors.Errorf("cannot find %d free ports", n)
	}
	return out, nil
}

// pickRange returns the ports freePorts picks from, [lo, hi): the 10,000
// below the ephemeral range in file, or an empty range when it cannot be
// read or starts too low.
func pickRange(file string) (int, int) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start-10000 < 1024 {
		return 0, 0
	}
	return start - 10000, start
}
