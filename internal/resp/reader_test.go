package resp

import (
	"bufio"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var testLimits = Limits{MaxBulk: 1 << 10, MaxArray: 10, MaxDepth: 3, MaxLine: 64}

func TestRead(t *testing.T) {
	type want struct {
		v        Value
		err      error
		consumed int64
		clean    bool
	}
	cases := map[string]struct {
		reason  string
		wire    string
		budget  int64
		discard int64
		want    want
	}{
		"Bulk": {
			reason: "A bulk string is read exactly, CRLF inside it included.",
			wire:   "$3\r\na\r\n\r\n",
			want:   want{v: Value{Kind: KindBulk, Str: []byte("a\r\n")}, consumed: 9, clean: true},
		},
		"Nil":      {reason: "$-1 is nil.", wire: "$-1\r\n", want: want{v: Value{Kind: KindNil}, consumed: 5, clean: true}},
		"NilArray": {reason: "*-1 is nil.", wire: "*-1\r\n", want: want{v: Value{Kind: KindNil}, consumed: 5, clean: true}},
		"Nested": {
			reason: "Arrays nest.",
			wire:   "*2\r\n:1\r\n*1\r\n+OK\r\n",
			want:   want{v: Value{Kind: KindArray, Elems: []Value{{Kind: KindInt, Int: 1}, {Kind: KindArray, Elems: []Value{{Kind: KindStatus, Str: []byte("OK")}}}}}, consumed: 17, clean: true},
		},
		"MinInt": {reason: "The smallest integer is read.", wire: ":-9223372036854775808\r\n", want: want{v: Value{Kind: KindInt, Int: math.MinInt64}, consumed: 23, clean: true}},
		"NextReplyBuffered": {
			reason: "Bytes after the reply stay unread, and the connection is not clean.",
			wire:   "+OK\r\n+FORGED\r\n",
			want:   want{v: Value{Kind: KindStatus, Str: []byte("OK")}, consumed: 5},
		},
		"HugeBulk": {
			reason: "A bulk length beyond the limit fails the stream when nothing may be discarded.",
			wire:   "$9999999999999\r\n",
			want:   want{err: ErrTooLarge},
		},
		"MaxLengthAtZeroBudget": {
			reason: "The largest length at a zero budget is refused, not overflowed.",
			wire:   "$9223372036854775807\r\n",
			budget: -1,
			want:   want{err: ErrTooLarge},
		},
		"MaxLengthDiscard": {
			reason:  "The largest length cannot be discarded: the stream fails.",
			wire:    "$9223372036854775807\r\n",
			budget:  -1,
			discard: 1 << 20,
			want:    want{err: ErrTooLarge},
		},
		"LongerThanInt64": {
			reason:  "A length of more digits than an int64 holds is too large, not wrapped around.",
			wire:    "*99999999999999999999\r\n",
			discard: 1 << 20,
			want:    want{err: ErrTooLarge},
		},
		"OverBudgetDiscarded": {
			reason:  "A bulk string over the budget is read and dropped whole when it may be discarded.",
			wire:    "$10\r\n0123456789\r\n",
			budget:  4,
			discard: 1 << 10,
			want:    want{err: ErrTooLarge, consumed: 17, clean: true},
		},
		"ArrayOverBudgetDiscarded": {
			reason:  "An array over the budget is dropped element by element, nested ones included.",
			wire:    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n+x\r\n",
			budget:  100,
			discard: 1 << 10,
			want:    want{err: ErrTooLarge, consumed: 27, clean: true},
		},
		"BigInsideDiscarded": {
			reason:  "A too large element deep inside arrays drops the whole reply.",
			wire:    "*2\r\n*2\r\n$2000\r\n" + strings.Repeat("b", 2000) + "\r\n:3\r\n+after\r\n",
			discard: 1 << 20,
			want:    want{err: ErrTooLarge, consumed: 2029, clean: true},
		},
		"LongLineDiscarded": {
			reason:  "A status line beyond MaxLine is dropped whole.",
			wire:    "-" + strings.Repeat("e", 200) + "\r\n",
			discard: 1 << 20,
			want:    want{err: ErrTooLarge, consumed: 203, clean: true},
		},
		"DiscardBound": {
			reason:  "A reply larger than what may be discarded fails the stream.",
			wire:    "$2000\r\n" + strings.Repeat("b", 2000) + "\r\n",
			discard: 100,
			want:    want{err: ErrTooLarge},
		},
		"TooDeep":       {reason: "Nesting beyond the bound is refused.", wire: "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", want: want{err: ErrTooLarge}},
		"ArrayBudget":   {reason: "An array whose elements cannot fit the budget is refused before allocating.", wire: "*9\r\n", budget: 100, want: want{err: ErrTooLarge}},
		"BadType":       {reason: "An unknown type byte is a protocol error.", wire: "%1\r\n", want: want{err: ErrProtocol}},
		"BadLength":     {reason: "A negative length other than -1 is a protocol error.", wire: "$-5\r\n", want: want{err: ErrProtocol}},
		"PlusLength":    {reason: "A signed length is not canonical.", wire: "$+1\r\na\r\n", want: want{err: ErrProtocol}},
		"LeadingZero":   {reason: "A length with a leading zero is not canonical.", wire: "$01\r\na\r\n", want: want{err: ErrProtocol}},
		"BadTerminator": {reason: "A bulk string not followed by CRLF is a protocol error.", wire: "$1\r\nab\r\n", want: want{err: ErrProtocol}},
		"BareLF":        {reason: "A line ended by LF alone is a protocol error.", wire: "+OK\n", want: want{err: ErrProtocol}},
		"Truncated":     {reason: "A stream that ends inside a reply fails.", wire: "$5\r\nab", want: want{err: cmpopts.AnyError}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewReader(bufio.NewReaderSize(strings.NewReader(tc.wire), 16), testLimits)
			r.Budget, r.Discard = 1<<10, tc.discard
			if tc.budget != 0 {
				r.Budget = max(tc.budget, 0)
			}
			v, err := r.Read()
			got := want{v: v, err: err, clean: r.Clean()}
			if err == nil || r.Clean() {
				got.consumed = r.Consumed()
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{}), cmpopts.EquateErrors(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s\nRead(): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestFeedAnySplit: a Decoder reaches the same verdicts whatever the pieces
// a stream comes in, one byte at a time included.
func TestFeedAnySplit(t *testing.T) {
	stream := "+OK\r\n*2\r\n$3\r\nabc\r\n*1\r\n-ERR x\r\n:42\r\n$-1\r\n*0\r\n" + "-" + strings.Repeat("e", 100) + "\r\n:7\r\n"
	whole := feedAll([]byte(stream), len(stream))
	for size := 1; size < 20; size++ {
		if diff := cmp.Diff(whole, feedAll([]byte(stream), size), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("fed %d bytes at a time: -whole, +split:\n%s", size, diff)
		}
	}
}

// feedAll feeds b to a Decoder size bytes at a time and returns what it
// made of each reply.
func feedAll(b []byte, size int) []string {
	d := Decoder{Limits: testLimits, Budget: 1 << 10, Discard: 1 << 10}
	var got []string
	for len(b) > 0 {
		piece := b[:min(size, len(b))]
		for len(piece) > 0 {
			n, done, err := d.Feed(piece)
			piece, b = piece[n:], b[n:]
			switch {
			case done && err != nil:
				got = append(got, "dropped "+strconv.FormatInt(d.Consumed(), 10))
			case done:
				got = append(got, string(appendValue(nil, d.Value())))
			case err != nil:
				return append(got, "failed: "+err.Error())
			}
			if done {
				d.Budget = 1 << 10
			}
		}
	}
	return got
}

// appendValue appends v as canonical RESP2.
func appendValue(b []byte, v Value) []byte {
	switch v.Kind {
	case KindStatus, KindError:
		b = append(b, byte(v.Kind))
		b = append(b, v.Str...)
	case KindInt:
		b = append(b, ':')
		b = strconv.AppendInt(b, v.Int, 10)
	case KindBulk:
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(v.Str)), 10)
		b = append(b, '\r', '\n')
		b = append(b, v.Str...)
	case KindNil:
		b = append(b, "$-1"...)
	case KindArray:
		b = append(b, '*')
		b = strconv.AppendInt(b, int64(len(v.Elems)), 10)
		b = append(b, '\r', '\n')
		for _, e := range v.Elems {
			b = appendValue(b, e)
		}
		return b
	}
	return append(b, '\r', '\n')
}
