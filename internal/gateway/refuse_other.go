//go:build !unix

package gateway

import "net"

// refuse closes c unanswered: without non-blocking writes on its socket,
// answering could block the accept loop.
func refuse(c net.Conn, _ []byte) { _ = c.Close() }
