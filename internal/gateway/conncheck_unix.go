//go:build unix

package gateway

import (
	"errors"
	"io"
	"net"
	"syscall"
)

var errUnexpectedData = errors.New("unexpected data on an idle connection")

// alive reports whether an idle pooled connection is still open, with one
// non-blocking peek: Redis closes connections of deleted ACL users and
// restarts drop them all, and a request must not be sent into a connection
// the server already closed.
func alive(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var checkErr error
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n == 0 && err == nil:
			checkErr = io.EOF
		case n > 0:
			checkErr = errUnexpectedData
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK):
			checkErr = nil
		default:
			checkErr = err
		}
		return true
	})
	if err != nil {
		return err
	}
	return checkErr
}
