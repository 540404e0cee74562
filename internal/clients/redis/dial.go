package redis

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Timeouts of every exchange with a Redis. They are short: the provider
// administers many Redis servers from a few workers, and a Redis that does
// not answer within them is reported (and backed off from), not waited for.
const (
	DialTimeout  = 2 * time.Second
	ReadTimeout  = 2 * time.Second
	WriteTimeout = 2 * time.Second
)

// ErrEndpointRefused is the error for an endpoint the platform does not let
// tenants' Secrets reach (see Endpoints).
var ErrEndpointRefused = errors.New("cannot reach an endpoint outside the provider's allowed endpoints")

// Endpoints restrict which servers a tenant-supplied Secret may make the
// provider dial. The zero value allows every endpoint.
type Endpoints struct {
	// CIDRs the dialled IP address may be in, checked on the address
	// actually dialled, so DNS answers cannot lead elsewhere.
	CIDRs []netip.Prefix
	// Suffixes a host name may end with (".redis.example.com"); a host that
	// matches one is dialled wherever it resolves to.
	Suffixes []string
}

// ParseEndpoints parses a list of CIDRs ("10.0.0.0/8") and host name
// suffixes (".redis.example.com" or "redis.example.com").
func ParseEndpoints(entries []string) (Endpoints, error) {
	var e Endpoints
	for _, s := range entries {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			e.CIDRs = append(e.CIDRs, p.Masked())
			continue
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || unsafeRune(r) }) {
			return Endpoints{}, errors.Errorf("cannot parse allowed endpoint %q: want a CIDR or a host name suffix", s)
		}
		e.Suffixes = append(e.Suffixes, strings.ToLower(strings.TrimPrefix(s, ".")))
	}
	return e, nil
}

// Restricted reports whether any restriction applies.
func (e Endpoints) Restricted() bool { return len(e.CIDRs) > 0 || len(e.Suffixes) > 0 }

// allowsName reports whether host matches a suffix: it equals one or ends
// with "." and one.
func (e Endpoints) allowsName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, s := range e.Suffixes {
		if host == s || strings.HasSuffix(host, "."+s) {
			return true
		}
	}
	return false
}

func (e Endpoints) allowsIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range e.CIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// check refuses, before anything is dialled, an address that cannot be
// allowed whatever it resolves to. It returns whether the IP addresses dialled
// must still be checked.
func (e Endpoints) check(address string) (checkIP bool, err error) {
	if !e.Restricted() {
		return false, nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false, errors.Wrap(err, "cannot parse the Redis address")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !e.allowsIP(ip) {
			return false, ErrEndpointRefused
		}
		return true, nil
	}
	if e.allowsName(host) {
		return false, nil
	}
	if len(e.CIDRs) == 0 {
		return false, ErrEndpointRefused
	}
	return true, nil
}

// control refuses to connect to an IP address outside the CIDRs.
func (e Endpoints) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !e.allowsIP(ap.Addr()) {
		return ErrEndpointRefused
	}
	return nil
}

// Validate refuses credentials that would not reach Redis as the values they
// are: whitespace or control characters in the address, control characters
// in the username or password (CR/LF would let a Secret smuggle commands, or
// an HTTP request to a server that is not Redis), or a bad port.
func (c Credentials) Validate() error {
	host, port, err := net.SplitHostPort(c.Address)
	if err != nil {
		return errors.New("cannot use the Redis address: want host:port")
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool { return unsafeRune(r) || unicode.IsSpace(r) }) {
		return errors.New("cannot use the Redis address: its host is empty or contains whitespace or control characters")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return errors.New("cannot use the Redis address: its port is not a number from 1 to 65535")
	}
	if strings.ContainsFunc(c.Username, unsafeRune) {
		return errors.New("cannot use the Redis username: it contains control characters")
	}
	if strings.ContainsFunc(c.Password, unsafeRune) {
		return errors.New("cannot use the Redis password: it contains control characters")
	}
	return nil
}

// unsafeRune reports control characters (CR and LF among them) and invalid
// UTF-8.
func unsafeRune(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }

// dialer returns go-redis's Dialer: a TCP connection within DialTimeout, to
// an allowed address when checkIP, whose replies pass through a guard.
func dialer(l Limits, e Endpoints, checkIP bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	if checkIP {
		d.Control = e.control
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			if errors.Is(err, ErrEndpointRefused) {
				return nil, ErrEndpointRefused
			}
			return nil, err
		}
		return &guardedConn{Conn: c, g: newGuard(l)}, nil
	}
}

// peerError returns err fit to become a condition on a tenant's object: it
// never carries what a peer that is not Redis sent. Redis error replies are
// kept (shortened, control characters dropped): they say why Redis refused.
// Network and timeout errors are kept: they name only the address the
// tenant gave. Anything else a peer caused becomes one fixed message.
func peerError(err error) error {
	var re goredis.Error
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrReplyRefused), errors.Is(err, ErrEndpointRefused), errors.Is(err, ErrBusy), errors.Is(err, ErrUnresponsive):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, goredis.ErrClosed):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the connection closed before Redis answered")
	case errors.As(err, &re):
		return errors.New(printable(re.Error(), 200))
	case errors.As(err, &ne):
		return err
	default:
		return errors.New("the peer does not answer as Redis does")
	}
}

// printable returns s without control characters, cut to at most n runes.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return -1
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}
