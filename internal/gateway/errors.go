package gateway

import (
	"errors"
	"fmt"
	"net"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// ErrUnauthorized is returned when Redis refused the token's user and key.
var ErrUnauthorized = errors.New("unauthorized")

// ErrUnavailable wraps failures to reach Redis.
var ErrUnavailable = errors.New("redis unavailable")

// ErrTimeout is returned when Redis did not answer within the request's
// deadline.
var ErrTimeout = errors.New("redis did not answer in time")

// ErrWedged is Healthy's error: no pooled connection was returned for
// longer than any request may hold one.
var ErrWedged = errors.New("every Redis connection is held for longer than any request may hold one")

// errUnexpectedReply is a reply to RESET or AUTH that is neither of the
// replies Redis gives: the connection is not in a state the gateway knows.
var errUnexpectedReply = fmt.Errorf("%w: unexpected reply to RESET or AUTH", ErrUnavailable)

// ioErr is the error of a request whose connection failed with err.
func ioErr(err error) error {
	if errors.Is(err, resp.ErrNoMemory) {
		// A reply the memory had no room for, too large to read and
		// drop: the connection is closed, the request was refused for
		// memory, not by Redis.
		return ErrBusy
	}
	if errors.Is(err, ErrReplyTooLarge) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthorized) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
