package local

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// The cluster's DNS, as CoreDNS's kubernetes plugin answers it: A records for
// <svc>.<ns>.svc.cluster.local (the ClusterIP; a headless Service's ready
// endpoints) and <hostname>.<svc>.<ns>.svc.cluster.local (a headless
// Service's ready endpoint with that hostname: a StatefulSet's pods), NXDOMAIN
// for other names under cluster.local, and the machine's resolver for the
// rest. Records come from the same snapshot of Services and EndpointSlices the
// Service proxy programs (services.go), so names follow pods as fast.

// ClusterDomain is the cluster's DNS domain.
const ClusterDomain = "cluster.local"

// dnsTTL is the TTL of cluster records. The resolvers pods use (glibc, Go)
// cache nothing, so it only matters to clients that do.
const dnsTTL = 5

// A dnsServer answers DNS queries over UDP and TCP on one loopback port.
type dnsServer struct {
	addr     string
	lookup   func(name string) ([]netip.Addr, bool)
	upstream []string
	udp      net.PacketConn
	tcp      net.Listener
}

// startDNS serves on a free loopback port; lookup returns a cluster name's
// addresses and whether the name exists.
func startDNS(lookup func(string) ([]netip.Addr, bool)) (*dnsServer, error) {
	s := &dnsServer{lookup: lookup, upstream: upstreams("/etc/resolv.conf")}
	var err error
	for range 20 {
		if s.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, errors.Wrap(err, "cannot listen for DNS")
		}
		s.addr = s.tcp.Addr().String()
		if s.udp, err = net.ListenPacket("udp", s.addr); err == nil {
			break
		}
		_ = s.tcp.Close()
	}
	if err != nil {
		return nil, errors.Wrap(err, "cannot listen for DNS")
	}
	go s.serveUDP()
	go s.serveTCP()
	return s, nil
}

func (s *dnsServer) close() {
	_ = s.udp.Close()
	_ = s.tcp.Close()
}

func (s *dnsServer) serveUDP() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte{}, buf[:n]...)
		go func() {
			if rsp := s.answer(q, "udp"); rsp != nil {
				_, _ = s.udp.WriteTo(rsp, from)
			}
		}()
	}
}

func (s *dnsServer) serveTCP() {
	for {
		conn, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close() //nolint:errcheck // Done with it.
			for {
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(conn, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(conn, q); err != nil {
					return
				}
				rsp := s.answer(q, "tcp")
				if rsp == nil {
					return
				}
				if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(rsp))), rsp...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer returns the reply to query q, nil to drop it.
func (s *dnsServer) answer(q []byte, network string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(question.Name.String(), "."))
	if name != ClusterDomain && !strings.HasSuffix(name, "."+ClusterDomain) {
		return s.forward(q, network)
	}
	addrs, ok := s.lookup(name)
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeSuccess}
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	if question.Type == dnsmessage.TypeA || question.Type == dnsmessage.TypeALL {
		for _, a := range addrs {
			if !a.Is4() {
				continue
			}
			_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL}, dnsmessage.AResource{A: a.As4()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// forward asks the machine's resolver a question outside the cluster.
func (s *dnsServer) forward(q []byte, network string) []byte {
	for _, up := range s.upstream {
		conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(context.Background(), network, up)
		if err != nil {
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		rsp, err := exchange(conn, q, network)
		_ = conn.Close()
		if err == nil {
			return rsp
		}
	}
	return nil
}

func exchange(conn net.Conn, q []byte, network string) ([]byte, error) {
	if network == "udp" {
		if _, err := conn.Write(q); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		return buf[:n], err
	}
	if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	rsp := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(conn, rsp)
	return rsp, err
}

// upstreams reads the nameservers of a resolv.conf, as host:53.
func upstreams(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, net.JoinHostPort(f[1], "53"))
		}
	}
	return out
}
