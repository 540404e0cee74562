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
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// probe runs a container's probe once against the pod, as the kubelet would:
// exec in the pod's network with the container's environment, httpGet and
// tcpSocket from outside to the pod IP. A nil error means it passed.
func (p *Pod) probe(ctx context.Context, c *container, pr *corev1.Probe) error {
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch h := pr.ProbeHandler; {
	case h.Exec != nil:
		argv := make([]string, 0, len(h.Exec.Command))
		for _, a := range h.Exec.Command {
			argv = append(argv, mapPaths(expand(a, c.vars), c.mounts))
		}
		argv = p.net.exec(argv)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // The pod's own probe command.
		cmd.Env = c.env
		cmd.Dir = p.Dir
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.Errorf("exec probe of container %q failed (%v): %s", c.spec.Name, err, oneLine(out))
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
			return errors.Wrapf(err, "httpGet probe of container %q", c.spec.Name)
		}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			req.Header.Set(hd.Name, hd.Value)
		}
		// The kubelet does not verify certificates of probed pods either.
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // As the kubelet.
		rsp, err := hc.Do(req)
		if err != nil {
			return errors.Wrapf(err, "httpGet probe of container %q", c.spec.Name)
		}
		_ = rsp.Body.Close()
		if rsp.StatusCode < 200 || rsp.StatusCode >= 400 {
			return errors.Errorf("httpGet probe of container %q: %s answered %d", c.spec.Name, u, rsp.StatusCode)
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
			return errors.Wrapf(err, "tcpSocket probe of container %q", c.spec.Name)
		}
		return conn.Close()
	default:
		return errors.Errorf("container %q: only exec, httpGet and tcpSocket probes are supported", c.spec.Name)
	}
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
