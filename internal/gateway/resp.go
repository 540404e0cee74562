package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The gateway speaks RESP2 to Redis through the small client in this file
// and conn.go rather than go-redis, for three reasons measured or required
// here:
//   - identity per request without a round trip: RESET, AUTH and the
//     request's commands go out in one write and their replies are read in
//     order (redis.go); go-redis's pool runs AUTH as its own round trip on
//     connect and has no way to pipeline it with a user's commands, and a
//     RESET+AUTH round trip per request measured 0.49x webdis;
//   - replies are untrusted input (a tenant controls its data and its Lua):
//     every reply is read against Limits (bulk size, array length, nesting,
//     total bytes) and turned into a JSON error when it is too big, where
//     go-redis allocates whatever length the server announces;
//   - the reply must be relayed as it is (strings, integers, nil, nested
//     arrays, errors at any depth), not mapped to Go types per command.

// Limits bound what one request may read from Redis.
type Limits struct {
	// MaxReplyBytes bounds the bytes of all replies of one request.
	MaxReplyBytes int64
	// MaxArrayLen bounds the elements of one array reply.
	MaxArrayLen int64
	// MaxDepth bounds the nesting of arrays.
	MaxDepth int
}

// DefaultLimits are the limits unless flags say otherwise.
var DefaultLimits = Limits{MaxReplyBytes: 64 << 20, MaxArrayLen: 1 << 20, MaxDepth: 32}

// ErrReplyTooLarge is returned when a reply exceeds Limits.
var ErrReplyTooLarge = errors.New("reply exceeds the gateway's limits")

// maxSkipBytes bounds the string a request whose reply is too large may
// make the gateway read and discard to keep its connection: a larger one
// closes the connection instead.
const maxSkipBytes = 16 << 20

// A tooLargeError is the ErrReplyTooLarge of replyReader.read: what is left of
// the reply on the connection, which skip discards so that the connection
// (and the replies after it: other requests' in a batched round) can still
// be read.
type tooLargeError struct {
	// bytes of a bulk string's payload and CRLF, then elems whole replies.
	bytes, elems int64
}

func (t *tooLargeError) Error() string        { return ErrReplyTooLarge.Error() }
func (t *tooLargeError) Is(target error) bool { return target == ErrReplyTooLarge }

// skip discards what t says is left, without keeping any of it: the
// connection's deadline bounds it. It counts the replies still to read
// rather than recursing, so nesting costs no stack.
func (rr *replyReader) skip(t *tooLargeError) error {
	if _, err := rr.r.Discard(int(t.bytes)); err != nil {
		return err
	}
	for n := t.elems; n > 0; n-- {
		l, err := rr.r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = rr.r.ReadSlice('\n')
		}
		if err != nil {
			return err
		}
		if len(l) < 3 {
			return errProtocol
		}
		switch Kind(l[0]) {
		case KindBulk, KindArray:
			m, err := strconv.ParseInt(string(l[1:len(l)-2]), 10, 64)
			if err != nil || m < -1 {
				return errProtocol
			}
			if Kind(l[0]) == KindArray {
				n += max(m, 0)
			} else if m >= 0 {
				if _, err := rr.r.Discard(int(m) + 2); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// errProtocol is a reply that is not RESP2. The connection is unusable.
var errProtocol = errors.New("cannot parse Redis reply")

// A Kind is the RESP2 type of a reply.
type Kind byte

// The RESP2 reply kinds.
const (
	KindStatus  Kind = '+'
	KindError   Kind = '-'
	KindInt     Kind = ':'
	KindBulk    Kind = '$'
	KindArray   Kind = '*'
	KindNil     Kind = 'n' // $-1 or *-1
	kindInvalid Kind = 0
)

// A Value is one RESP2 reply.
type Value struct {
	Kind  Kind
	Str   []byte // status, error and bulk
	Int   int64
	Elems []Value
}

// IsError reports whether v is an error reply.
func (v Value) IsError() bool { return v.Kind == KindError }

// appendCommand appends args as a RESP2 array of bulk strings.
func appendCommand(b []byte, args ...[]byte) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// A replyReader reads replies within a budget of bytes shared by all
// replies of one request.
type replyReader struct {
	r      *bufio.Reader
	limits Limits
	budget int64
	// arena holds small strings of this request's replies: one
	// allocation for many replies (a pipeline) rather than one each.
	arena []byte
}

// alloc returns n bytes for a reply string.
func (rr *replyReader) alloc(n int) []byte {
	const maxChunk = 8 << 10
	if n > maxChunk/4 {
		return make([]byte, n)
	}
	if cap(rr.arena)-len(rr.arena) < n {
		// Start small (most requests read one short reply), double
		// up to maxChunk.
		c := max(256, min(2*cap(rr.arena), maxChunk), n)
		rr.arena = make([]byte, 0, c)
	}
	l := len(rr.arena)
	rr.arena = rr.arena[:l+n]
	return rr.arena[l : l+n : l+n]
}

func (rr *replyReader) spend(n int64) error {
	rr.budget -= n
	if rr.budget < 0 {
		return ErrReplyTooLarge
	}
	return nil
}

// line reads one line without its CRLF. Lines longer than the reader's
// buffer (a long error text) are collected within the budget.
func (rr *replyReader) line() ([]byte, error) {
	l, err := rr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), l...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if rr.spend(int64(len(l))) != nil {
				// Read the rest of the line, keeping none of it.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = rr.r.ReadSlice('\n')
				}
				return nil, firstErr(err, &tooLargeError{})
			}
			l, err = rr.r.ReadSlice('\n')
			long = append(long, l...)
		}
		l = long
	}
	if err != nil {
		return nil, err
	}
	if err := rr.spend(int64(len(l))); err != nil {
		return nil, &tooLargeError{}
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, errProtocol
	}
	return l[:len(l)-2], nil
}

// read reads one reply. Strings are copied out of the reader's buffer.
func (rr *replyReader) read(depth int) (Value, error) {
	l, err := rr.line()
	if err != nil {
		return Value{}, err
	}
	switch Kind(l[0]) {
	case KindStatus, KindError:
		str := rr.alloc(len(l) - 1)
		copy(str, l[1:])
		return Value{Kind: Kind(l[0]), Str: str}, nil
	case KindInt:
		n, err := strconv.ParseInt(string(l[1:]), 10, 64)
		if err != nil {
			return Value{}, errProtocol
		}
		return Value{Kind: KindInt, Int: n}, nil
	case KindBulk:
		n, err := strconv.ParseInt(string(l[1:]), 10, 64)
		if err != nil || n < -1 {
			return Value{}, errProtocol
		}
		if n == -1 {
			return Value{Kind: KindNil}, nil
		}
		// Check the announced length against the budget before
		// allocating it: the length is the server's word.
		if rr.spend(n+2) != nil {
			return Value{}, &tooLargeError{bytes: n + 2}
		}
		b := rr.alloc(int(n) + 2)
		if _, err := io.ReadFull(rr.r, b); err != nil {
			return Value{}, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return Value{}, errProtocol
		}
		return Value{Kind: KindBulk, Str: b[:n:n]}, nil
	case KindArray:
		n, err := strconv.ParseInt(string(l[1:]), 10, 64)
		if err != nil || n < -1 {
			return Value{}, errProtocol
		}
		if n == -1 {
			return Value{Kind: KindNil}, nil
		}
		// Every element costs at least 4 bytes on the wire (":0\r\n"),
		// so the budget bounds the allocation too.
		if n > rr.limits.MaxArrayLen || depth >= rr.limits.MaxDepth || n*4 > rr.budget {
			return Value{}, &tooLargeError{elems: n}
		}
		v := Value{Kind: KindArray, Elems: make([]Value, n)}
		for i := range v.Elems {
			if v.Elems[i], err = rr.read(depth + 1); err != nil {
				if t, ok := errors.AsType[*tooLargeError](err); ok {
					// The elements after this one are left too.
					t.elems += n - int64(i) - 1
				}
				return Value{}, err
			}
		}
		return v, nil
	default:
		return Value{}, fmt.Errorf("%w: unexpected type byte %q", errProtocol, l[0])
	}
}
