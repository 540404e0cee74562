package local

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// HostsFile is the machine's hosts file, where `make dev` publishes the
// cluster's Service names so that a connection Secret's url and
// UPSTASH_REDIS_REST_URL work from the developer's shell as they are. It
// holds one block per control plane directory, marked with it; nothing
// else of the file is touched.
const HostsFile = "/etc/hosts"

// hostsMarkers are the lines around dir's block.
func hostsMarkers(dir string) (string, string) {
	return "# BEGIN redishttp make dev " + dir + " (removed by make dev-down)", "# END redishttp make dev " + dir
}

// setHostsBlock makes dir's block of the hosts file at path hold lines (none
// removes the block), keeping every other line as it was. The file is
// rewritten in place, not renamed over: /etc/hosts is often a bind mount.
func setHostsBlock(path, dir string, lines []string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return errors.Wrapf(err, "cannot read %s", path)
	}
	begin, end := hostsMarkers(dir)
	var kept []string
	in := false
	for l := range strings.SplitSeq(strings.TrimSuffix(string(old), "\n"), "\n") {
		switch {
		case l == begin:
			in = true
		case l == end && in:
			in = false
		case !in:
			kept = append(kept, l)
		}
	}
	if len(lines) > 0 {
		kept = append(kept, begin)
		kept = append(kept, lines...)
		kept = append(kept, end)
	}
	b := []byte(strings.Join(kept, "\n") + "\n")
	if bytes.Equal(b, old) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return errors.Wrapf(err, "cannot open %s", path)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return errors.Wrapf(err, "cannot write %s", path)
	}
	return errors.Wrapf(f.Close(), "cannot write %s", path)
}

// serviceNameLines are hosts lines for every Service with a ClusterIP:
// <name>.<namespace>.svc.cluster.local and the ClusterIP, which this machine
// reaches (services.go). Sorted, so an unchanged cluster writes nothing.
func serviceNameLines(svcs []corev1.Service) []string {
	var lines []string
	for _, s := range svcs {
		ip := net.ParseIP(s.Spec.ClusterIP)
		if ip == nil {
			continue // headless (None) or not allocated yet
		}
		lines = append(lines, fmt.Sprintf("%s %s.%s.svc.%s", ip, s.Name, s.Namespace, ClusterDomain))
	}
	slices.Sort(lines)
	return lines
}

// PublishServiceNames keeps the control plane's block of the hosts file at
// path equal to its Services' names until the returned function is called,
// which removes the block. Failures are logged, never fatal: the names are a
// convenience for the developer's shell.
func (c *Cluster) PublishServiceNames(ctx context.Context, path string) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last []string
		var lastErr string
		for {
			svcs := &corev1.ServiceList{}
			if err := c.Client.List(ctx, svcs); err == nil {
				lines := serviceNameLines(svcs.Items)
				if !slices.Equal(lines, last) {
					err := setHostsBlock(path, c.opts.Dir, lines)
					if err == nil {
						last = lines
					} else if err.Error() != lastErr {
						c.opts.Logf("cannot publish Service names in %s: %v", path, err)
						lastErr = err.Error()
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if err := RemoveServiceNames(path, c.opts.Dir); err != nil {
			c.opts.Logf("%v", err)
		}
	}
}

// RemoveServiceNames removes the block of the control plane in dir from the
// hosts file at path (make dev-down, also after a crash).
func RemoveServiceNames(path, dir string) error {
	return setHostsBlock(path, dir, nil)
}
