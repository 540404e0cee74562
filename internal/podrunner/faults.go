package podrunner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Faults a test injects into a running pod, as it would on a real node with
// kill -9, docker pause or a firewall.

// Kill sends SIGKILL to a container's processes, as kill -9 of a real
// container's main process does (its PID namespace goes with it). The runner
// restarts it as any container that died, counting the restart.
func (p *Pod) Kill(container string) error {
	for _, c := range p.ctrs {
		if c.spec.Name != container {
			continue
		}
		c.mu.Lock()
		pr := c.proc
		c.mu.Unlock()
		return pr.Signal(syscall.SIGKILL)
	}
	return errors.Errorf("pod %s has no container %q", p.name, container)
}

// Freeze stops every process of the pod (SIGSTOP), probes and hooks running
// in it included: the pod keeps its network and sockets but answers nothing,
// as a paused container or a stalled machine. Thaw continues them.
func (p *Pod) Freeze() error {
	// A process may fork while its siblings are being stopped: repeat until
	// every process of the pod is stopped.
	for range 100 {
		pids, err := p.net.pids()
		if err != nil {
			return err
		}
		all := true
		for _, pid := range pids {
			if !stopped(pid) {
				all = false
				_ = syscall.Kill(pid, syscall.SIGSTOP)
			}
		}
		if all {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.Errorf("cannot freeze pod %s: its processes keep changing", p.name)
}

// Thaw continues every process of the pod (SIGCONT).
func (p *Pod) Thaw() error {
	pids, err := p.net.pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	return nil
}

// stopped reports whether a process is stopped (state T), or gone.
func stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'T' || b[i+2] == 't' || b[i+2] == 'Z'
}

// CutNetwork drops every IP packet into and out of the pod until
// RestoreNetwork, silently, as a partition does: peers' connections time out
// rather than fail. ARP still passes (as on a switch that stays up), and the
// pod's loopback keeps working.
func (p *Pod) CutNetwork() error { return p.net.cut() }

// RestoreNetwork undoes CutNetwork.
func (p *Pod) RestoreNetwork() error { return p.net.restore() }

// pids lists the processes in the pod's network namespace.
func (n *network) pids() ([]int, error) {
	out, err := ipCmd("netns", "pids", n.ns).Output()
	if err != nil {
		return nil, errors.Wrapf(err, "cannot list the processes of network namespace %s", n.ns)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// cutTable names the nftables table of the host's end of a cut pod's link.
func (n *network) cutTable() string { return "redishttp-cut-" + n.veth }

// cut drops IP packets at the ingress of both ends of the pod's link: eth0
// in the pod, the veth on the host. Dropping at ingress (netdev family) is
// silent for every sender, the host's processes included.
func (n *network) cut() error {
	rules := func(table, dev string) string {
		// create (not add) fails when the pod is cut already.
		return fmt.Sprintf("create table netdev %[1]s\nadd chain netdev %[1]s ingress { type filter hook ingress device %[2]q priority 0; policy accept; }\nadd rule netdev %[1]s ingress meta protocol { ip, ip6 } drop\n", table, dev)
	}
	if err := nftCmd(n.ns, "-f", "-").runWith(rules("redishttp-cut", "eth0")); err != nil {
		return errors.Wrapf(err, "cannot cut the network of pod IP %s", n.ip)
	}
	if err := nftCmd("", "-f", "-").runWith(rules(n.cutTable(), n.veth)); err != nil {
		_ = nftCmd(n.ns, "delete", "table", "netdev", "redishttp-cut").runWith("")
		return errors.Wrapf(err, "cannot cut the network of pod IP %s", n.ip)
	}
	return nil
}

func (n *network) restore() error {
	if err := nftCmd(n.ns, "delete", "table", "netdev", "redishttp-cut").runWith(""); err != nil {
		return errors.Wrapf(err, "cannot restore the network of pod IP %s", n.ip)
	}
	if err := nftCmd("", "delete", "table", "netdev", n.cutTable()).runWith(""); err != nil {
		return errors.Wrapf(err, "cannot restore the network of pod IP %s", n.ip)
	}
	return nil
}

type nft struct{ *exec.Cmd }

// nftCmd runs nft(8) with args, in network namespace ns ("" for the host's).
func nftCmd(ns string, args ...string) nft {
	if ns != "" {
		args = append([]string{"netns", "exec", ns, "nft"}, args...)
		return nft{ipCmd(args...)}
	}
	return nft{exec.CommandContext(context.Background(), "nft", args...)} //nolint:gosec // Names derived from a pod IP, not input.
}

func (c nft) runWith(stdin string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("nft (nftables) is not installed: hack/deps.sh installs it")
	}
	c.Stdin = strings.NewReader(stdin)
	if out, err := c.CombinedOutput(); err != nil {
		return errors.Errorf("%s: %v: %s", strings.Join(c.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
