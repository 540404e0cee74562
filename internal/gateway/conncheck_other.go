//go:build !unix

package gateway

import "net"

// alive cannot peek without blocking here; a dead connection fails the
// request that uses it.
func alive(net.Conn) error { return nil }
