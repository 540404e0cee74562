//go:build unix

package gateway

import (
	"net"
	"syscall"
)

// refuse answers c with answer (when not nil) and closes it, never
// blocking: the answer is written with one non-blocking write (a new
// connection's send buffer has room for it), then the sending side is
// closed and what the client already sent is read without waiting
// (closing a socket with unread bytes resets the connection, and the reset
// could overtake the answer).
func refuse(c net.Conn, answer []byte) {
	defer c.Close() //nolint:errcheck // Nothing to do about it.
	sc, ok := c.(syscall.Conn)
	if answer == nil || !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Write(func(fd uintptr) bool {
		_, _ = syscall.Write(int(fd), answer)
		return true
	})
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = rc.Read(func(fd uintptr) bool {
		var b [4 << 10]byte
		for range 16 {
			if n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_DONTWAIT); n <= 0 || err != nil {
				break
			}
		}
		return true
	})
}
