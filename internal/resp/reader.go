package resp

import (
	"bufio"
)

// A Reader reads replies from a buffered connection with a Decoder.
type Reader struct {
	Decoder

	br *bufio.Reader
}

// NewReader returns a Reader of br's replies within l.
func NewReader(br *bufio.Reader, l Limits) *Reader {
	return &Reader{Decoder: Decoder{Limits: l}, br: br}
}

// Read reads one reply. An error wrapping ErrTooLarge with the Decoder not
// Failed is a reply that was read and dropped whole; after any other error
// the stream failed and its connection must be closed.
func (r *Reader) Read() (Value, error) {
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				// Even between replies: a reply may still come.
				r.err = err
				return Value{}, err
			}
		}
		p, _ := r.br.Peek(r.br.Buffered())
		n, done, err := r.Feed(p)
		_, _ = r.br.Discard(n)
		switch {
		case err != nil:
			return Value{}, err
		case done:
			return r.value, nil
		}
	}
}

// Clean reports whether the connection may be used again: its stream is
// at a reply boundary, never failed, and nothing past the last reply was
// read (bytes nobody asked for are not a reply to the next request).
func (r *Reader) Clean() bool { return r.AtBoundary() && r.br.Buffered() == 0 }
