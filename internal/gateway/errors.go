package gateway

import (
	"errors"
	"fmt"
	"net"
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

func ioErr(err error) error {
	if errors.Is(err, ErrReplyTooLarge) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthorized) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
