package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// A Service stands in for a Kubernetes Service in front of one pod, as
// kube-proxy's DNAT makes it: every new connection to Addr goes to the
// backend routed at the time, connections made before a Route keep their
// backend (a failover moves the Service, not the connections already open).
type Service struct {
	// Addr is the loopback host:port clients dial.
	Addr string

	ln      net.Listener
	mu      sync.Mutex
	backend string
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// StartService listens on a free loopback port and forwards connections to
// backend until the test ends.
func StartService(t testing.TB, backend string) *Service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	s := &Service{Addr: ln.Addr().String(), ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.serve)
	t.Cleanup(s.close)
	return s
}

// Route sends the connections made from now on to backend.
func (s *Service) Route(backend string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backend = backend
}

func (s *Service) serve() {
	for {
		in, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		backend := s.backend
		s.mu.Unlock()
		out, err := net.Dial("tcp", backend)
		if err != nil {
			// As a Service without a ready endpoint: refused.
			_ = in.Close()
			continue
		}
		if !s.track(in, out) {
			return
		}
		s.wg.Go(func() { pipe(out, in) })
		s.wg.Go(func() { pipe(in, out) })
	}
}

// track records a connection pair, or closes it and reports false when
// the Service is closed.
func (s *Service) track(cs ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		s.conns[c] = struct{}{}
	}
	return true
}

// pipe copies from src to dst; when src ends, both directions end, as when
// either peer of a NATed connection closes it.
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

func (s *Service) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}
