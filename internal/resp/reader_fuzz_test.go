package resp

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"testing"
)

// FuzzReader reads arbitrary streams (or streams of replies generated from
// the input) with arbitrary budgets, discard bounds and buffer sizes. The
// property: every reply Read returns is attributed to exactly its bytes (the
// bytes consumed are its canonical encoding), every reply dropped as too
// large is exactly one whole reply, and anything else fails the stream for
// good; nothing panics, nothing reads past what it returned.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n:1\r\n$-1\r\n", "*10000000000000\r\n", "$9223372036854775807\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "HTTP/1.1 200 OK\r\n", "$-2\r\n", "+RESET\r\n+OK\r\n$5\r\nFORGE\r\n",
		"-" + string(bytes.Repeat([]byte("e"), 100)) + "\r\n:1\r\n",
	} {
		f.Add([]byte(s), int64(len(s)/2), int64(64), uint8(0), false)
		f.Add([]byte(s), int64(0), int64(0), uint8(3), true)
	}
	f.Fuzz(checkStream)
}

// checkStream is FuzzReader's property.
func checkStream(t *testing.T, in []byte, budget, discard int64, size uint8, generate bool) {
	stream := in
	if generate {
		g := gen{b: in}
		stream = nil
		for len(g.b) > 0 {
			stream = appendValue(stream, g.value(0))
		}
	}
	l := Limits{MaxBulk: 256, MaxArray: 16, MaxDepth: 4, MaxLine: 32}
	r := NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 16+int(size%64)), l)
	r.Budget, r.Discard = abs(budget)%(1<<12), abs(discard)%(1<<12)
	off := int64(0)
	for {
		v, err := r.Read()
		if err != nil && (!errors.Is(err, ErrTooLarge) || r.Failed()) {
			if !r.Failed() {
				t.Fatalf("Read() = %v but the stream did not fail", err)
			}
			return
		}
		c := r.Consumed()
		if off+c > int64(len(stream)) {
			t.Fatalf("reply at %d consumed %d bytes past the end of %q", off, c, stream)
		}
		got := stream[off : off+c]
		whole := Decoder{Limits: Limits{MaxBulk: math.MaxInt64, MaxArray: math.MaxInt64, MaxDepth: math.MaxInt, MaxLine: math.MaxInt - 2}, Budget: math.MaxInt64}
		n, done, derr := whole.Feed(got)
		if !done || derr != nil || n != len(got) {
			t.Fatalf("attributed or dropped %q, which is not one whole reply (done %t after %d bytes, error %v)", got, done, n, derr)
		}
		// The bytes must be v's encoding; a null is one value with two
		// encodings ($-1 and *-1), so both sides are compared as encoded
		// by appendValue.
		if want := appendValue(nil, v); err == nil && !bytes.Equal(want, appendValue(nil, whole.Value())) {
			t.Fatalf("Read() = %q, attributed to bytes %q", want, got)
		}
		off += c
	}
}

func abs(n int64) int64 {
	if n < 0 {
		return -(n + 1)
	}
	return n
}

// A gen makes replies out of fuzz input.
type gen struct{ b []byte }

func (g *gen) next() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *gen) value(depth int) Value {
	c := g.next()
	n := int(c >> 3)
	switch c % 6 {
	case 0:
		return Value{Kind: KindStatus, Str: g.text(n)}
	case 1:
		return Value{Kind: KindError, Str: g.text(n)}
	case 2:
		return Value{Kind: KindInt, Int: int64(n) - 16}
	case 3:
		return Value{Kind: KindNil}
	case 4:
		if depth > 5 {
			return Value{Kind: KindNil}
		}
		v := Value{Kind: KindArray, Elems: make([]Value, n%8)}
		for i := range v.Elems {
			v.Elems[i] = g.value(depth + 1)
		}
		return v
	default:
		s := make([]byte, n*11)
		for i := range s {
			s[i] = g.next()
		}
		return Value{Kind: KindBulk, Str: s}
	}
}

// text returns n bytes of a status or error line: no CR or LF.
func (g *gen) text(n int) []byte {
	s := make([]byte, n)
	for i := range s {
		s[i] = 'a' + g.next()%26
	}
	return s
}
