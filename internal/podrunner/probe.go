package podrunner

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// probe runs a container's probe once against the pod, as the kubelet would:
// exec in the pod's network with the container's environment, httpGet and
// tcpSocket from outside to the pod IP, bounded by timeoutSeconds. A nil
// error means it passed.
func (p *Pod) probe(ctx context.Context, c *container, pr *corev1.Probe) error {
	ctx, cancel := context.WithTimeout(ctx, seconds(pr.TimeoutSeconds, 1))
	defer cancel()
	if err := p.handle(ctx, c, pr.ProbeHandler); err != nil {
		return errors.Wrapf(err, "probe of container %q", c.spec.Name)
	}
	return nil
}

// hook runs a lifecycle hook of a container (exec, httpGet, tcpSocket or
// sleep) within ctx.
func (p *Pod) hook(ctx context.Context, c *container, h *corev1.LifecycleHandler) error {
	if h.Sleep != nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return nil
	}
	return p.handle(ctx, c, corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket})
}

// handle runs a probe's or hook's action once; nil means it passed.
func (p *Pod) handle(ctx context.Context, c *container, h corev1.ProbeHandler) error {
	switch {
	case h.Exec != nil:
		out, err := p.execIn(ctx, c, h.Exec.Command)
		if err != nil {
			return errors.Errorf("exec failed (%v): %s", err, oneLine(out))
		}
		return nil
	case h.HTTPGet != nil:
		port, err := portOf(c.spec, h.HTTPGet.Port)
		if err != nil {
			return err
		}
		host := h.HTTPGet.Host
		if host == "" {
			host = p.IP
		}
		scheme := "http"
		if h.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		u := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), h.HTTPGet.Path)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return errors.Wrap(err, "httpGet")
		}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			req.Header.Set(hd.Name, hd.Value)
		}
		// The kubelet does not verify certificates of probed pods either.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // As the kubelet.
		rsp, err := hc.Do(req)
		if err != nil {
			return errors.Wrap(err, "httpGet")
		}
		_ = rsp.Body.Close()
		if rsp.StatusCode < 200 || rsp.StatusCode >= 400 {
			return errors.Errorf("httpGet %s answered %d", u, rsp.StatusCode)
		}
		return nil
	case h.TCPSocket != nil:
		port, err := portOf(c.spec, h.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.IP, strconv.Itoa(port)))
		if err != nil {
			return errors.Wrap(err, "tcpSocket")
		}
		return conn.Close()
	default:
		return errors.New("only exec, httpGet and tcpSocket actions are supported")
	}
}

// execIn runs argv in container c's environment and namespaces, its
// container paths mapped, and returns its combined output.
func (p *Pod) execIn(ctx context.Context, c *container, command []string) ([]byte, error) {
	argv := make([]string, 0, len(command))
	for _, a := range command {
		argv = append(argv, mapPaths(expand(a, c.vars), c.mounts))
	}
	argv = p.exec(c, argv)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // The pod's own command.
	cmd.Env = c.env
	cmd.Dir = p.Dir
	// A probe or hook cut short takes what it started with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd.CombinedOutput()
}

// Exec runs command in a container of the pod as `kubectl exec` does: in the
// pod's network, with the container's environment and volumes, and returns
// its combined output.
func (p *Pod) Exec(ctx context.Context, container string, command ...string) ([]byte, error) {
	for _, c := range p.ctrs {
		if c.spec.Name == container {
			return p.execIn(ctx, c, command)
		}
	}
	return nil, errors.Errorf("pod %s has no container %q", p.name, container)
}

// portOf resolves a probe's port, a number or the name of a container port.
func portOf(c corev1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, errors.Errorf("container %q has no port named %q", c.Name, port.StrVal)
}

// oneLine shortens command output for a message.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "..."
	}
	return s
}
