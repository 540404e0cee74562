package resp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// Limits bound what a Decoder keeps of one reply.
type Limits struct {
	// MaxBulk is the largest bulk string, in bytes.
	MaxBulk int64
	// MaxArray is the largest array, in elements.
	MaxArray int64
	// MaxDepth is how deeply arrays may nest.
	MaxDepth int
	// MaxLine is the longest status or error line, in bytes.
	MaxLine int
}

var (
	// ErrTooLarge is a reply beyond a Decoder's Limits or budget.
	ErrTooLarge = errors.New("reply too large")
	// ErrNoMemory is a reply its Decoder's Reserver refused.
	ErrNoMemory = errors.New("no memory free for the reply")
	// ErrProtocol is a stream that is not canonical RESP2.
	ErrProtocol = errors.New("the peer does not speak RESP2")
	// errClosed is every error after the first final one.
	errClosed = errors.New("the stream failed earlier")
)

// maxHeader bounds an integer or length line: a type byte, 20 characters
// of a 64-bit integer and CRLF.
const maxHeader = 1 + 20 + 2

// A Reserver hands out memory for replies.
type Reserver interface {
	// Reserve reports whether n more bytes may be held.
	Reserve(n int64) bool
}

// A Decoder follows a stream of RESP2 replies fed to it in pieces of any
// size, checks each reply against its Limits and Budget before it keeps
// or allocates anything, and builds each reply's Value (unless NoValues).
//
// A reply's cost is its bytes on the wire plus ValueSize per array
// element: a bound on the memory it holds once read. Each reply is charged
// to Budget, which the caller sets (per reply, or for several).
//
// A reply over the limits or the budget fails the stream, unless Discard
// allows reading and dropping the rest of it: then the Decoder drops the
// reply whole (at most Discard more bytes of it) and ends it with
// ErrTooLarge, at the next reply's first byte, where the stream can go on.
type Decoder struct {
	Limits Limits
	// Budget is the cost the next replies may still take.
	Budget int64
	// Discard bounds the bytes of a reply over its limits that are read
	// and dropped to end it; 0 fails the stream instead.
	Discard int64
	// NoValues checks replies without building them.
	NoValues bool
	// Reserve, when set, is asked for every cost charged to Budget: a
	// bound shared with other readers (a process's memory). A reply it
	// refuses is over its limits, with ErrNoMemory.
	Reserve Reserver

	// line holds a line split across pieces; longLine is a status or
	// error line being dropped (its bytes are not kept); cr says whether
	// the last byte fed was CR.
	line     []byte
	longLine bool
	cr       bool
	// bulk receives the bulk string being read, payload and CRLF (nil
	// when it is not kept); bulkLeft is what of it is still to come.
	bulk     []byte
	bulkLeft int64
	// frames are the open arrays, innermost last.
	frames []frame
	// tooLarge, while a reply is being dropped, says why; skip is how many
	// values of it are still to end, dropped its bytes read since.
	tooLarge error
	skip     int64
	dropped  int64
	// n is the bytes of the current reply so far; last, those of the
	// reply that ended last.
	n, last int64
	value   Value
	err     error
	arena   []byte
}

type frame struct {
	elems []Value
	// left counts the elements not ended yet, the one being read
	// included.
	left int64
}

// Feed reads the next bytes of the stream, up to the end of the current
// reply at most, and returns how many it consumed. done reports that the
// reply ended: Value returns it, or err wraps ErrTooLarge when it was
// dropped. An error with done false is final: the stream is inside a reply
// (or not RESP2) and every later Feed fails.
func (d *Decoder) Feed(p []byte) (n int, done bool, err error) {
	if d.err != nil {
		return 0, false, errClosed
	}
	for n < len(p) {
		var k int
		if d.bulkLeft > 0 {
			k, done, err = d.feedBulk(p[n:])
		} else {
			k, done, err = d.feedLine(p[n:])
		}
		n += k
		if err == nil && d.dropping() {
			d.dropped += int64(k)
			if d.dropped > d.Discard {
				err = d.tooLarge
			}
		}
		if err != nil {
			d.err = err
			return n, false, err
		}
		if done {
			d.last = d.n
			d.n = 0
			err, d.tooLarge, d.skip, d.dropped = d.tooLarge, nil, 0, 0
			return n, true, err
		}
	}
	return n, false, nil
}

// Value returns the reply that ended last.
func (d *Decoder) Value() Value { return d.value }

// Consumed returns the bytes of the reply that ended last.
func (d *Decoder) Consumed() int64 { return d.last }

// Failed reports whether the stream failed: it must not be read further.
func (d *Decoder) Failed() bool { return d.err != nil }

// AtBoundary reports whether the stream is between two replies: nothing of
// a reply was fed since the last one ended, and it did not fail.
func (d *Decoder) AtBoundary() bool { return d.err == nil && d.n == 0 }

// Start sets the budget of the next replies and lets the strings of the
// replies read so far go: they share no memory with the next ones.
func (d *Decoder) Start(budget int64) {
	d.Budget = budget
	d.arena = nil
}

func (d *Decoder) feedBulk(p []byte) (int, bool, error) {
	k := min(int64(len(p)), d.bulkLeft)
	chunk := p[:k]
	// The last two bytes are CRLF.
	for j := max(0, d.bulkLeft-2); j < k; j++ {
		want := byte('\r')
		if d.bulkLeft-j == 1 {
			want = '\n'
		}
		if chunk[j] != want {
			return int(k), false, ErrProtocol
		}
	}
	if d.bulk != nil {
		copy(d.bulk[int64(len(d.bulk))-d.bulkLeft:], chunk)
	}
	d.bulkLeft -= k
	d.n += k
	if d.bulkLeft > 0 {
		return int(k), false, nil
	}
	var v Value
	if d.bulk != nil {
		l := len(d.bulk) - 2
		v = Value{Kind: KindBulk, Str: d.bulk[:l:l]}
		d.bulk = nil
	}
	return int(k), d.end(v), nil
}

func (d *Decoder) feedLine(p []byte) (int, bool, error) {
	i := bytes.IndexByte(p, '\n')
	chunk := p
	if i >= 0 {
		chunk = p[:i+1]
	}
	d.n += int64(len(chunk))
	// cr says whether the byte before the LF is CR, for a line that is
	// dropped (a kept one is checked whole by header).
	cr := d.cr
	if len(chunk) >= 2 {
		cr = chunk[len(chunk)-2] == '\r'
	}
	d.cr = chunk[len(chunk)-1] == '\r'
	line := chunk
	if !d.longLine && (i < 0 || len(d.line) > 0) {
		if err := d.keep(chunk); err != nil {
			return len(chunk), false, err
		}
		line = d.line
	}
	if i < 0 {
		return len(chunk), false, nil
	}
	if d.longLine {
		d.longLine = false
		if !cr {
			return len(chunk), false, ErrProtocol
		}
		return len(chunk), d.end(Value{}), nil
	}
	done, err := d.header(line)
	d.line = d.line[:0]
	return len(chunk), done, err
}

// keep keeps b, a piece of a line split across pieces, or drops the line:
// a status or error line beyond MaxLine (or of a reply being dropped) is
// not kept, a longer header is not RESP2.
func (d *Decoder) keep(b []byte) error {
	kind := Kind(b[0])
	if len(d.line) > 0 {
		kind = Kind(d.line[0])
	}
	// n is the line's length so far; a status or error line may be its
	// type byte, MaxLine bytes and CRLF (compared without adding to
	// MaxLine, which may be near math.MaxInt).
	n := len(d.line) + len(b)
	fits := n <= maxHeader
	if kind == KindStatus || kind == KindError {
		fits = !d.dropping() && n-3 <= d.Limits.MaxLine
	}
	if fits {
		d.line = append(d.line, b...)
		return nil
	}
	if kind != KindStatus && kind != KindError {
		return ErrProtocol
	}
	if !d.dropping() {
		if err := d.overLimit(fmt.Errorf("%w: a line of more than %d bytes", ErrTooLarge, d.Limits.MaxLine)); err != nil {
			return err
		}
	}
	d.line = d.line[:0]
	d.longLine = true
	return nil
}

// header reads one whole line, CRLF included, and reports whether it ended
// the reply.
func (d *Decoder) header(line []byte) (bool, error) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return false, ErrProtocol
	}
	body := line[1 : len(line)-2]
	kind := Kind(line[0])
	switch kind {
	case KindStatus, KindError:
		if !d.dropping() {
			var err error
			if len(body) > d.Limits.MaxLine {
				err = d.overLimit(fmt.Errorf("%w: a line of more than %d bytes", ErrTooLarge, d.Limits.MaxLine))
			} else {
				err = d.spend(int64(len(line)), 0, 1)
			}
			if err != nil {
				return false, err
			}
		}
		if d.dropping() || d.NoValues {
			return d.end(Value{}), nil
		}
		str := d.alloc(len(body))
		copy(str, body)
		return d.end(Value{Kind: kind, Str: str}), nil
	case KindInt:
		v, ok := parseInt(body)
		if !ok {
			return false, ErrProtocol
		}
		if !d.dropping() {
			if err := d.spend(int64(len(line)), 0, 1); err != nil {
				return false, err
			}
		}
		return d.end(Value{Kind: KindInt, Int: v}), nil
	case KindBulk:
		return d.bulkHeader(line, body)
	case KindArray:
		return d.arrayHeader(line, body)
	default:
		// RESP3 types included: RESP2 only.
		return false, ErrProtocol
	}
}

func (d *Decoder) bulkHeader(line, body []byte) (bool, error) {
	n, ok := parseLen(body)
	if !ok {
		return false, ErrProtocol
	}
	if n == -1 {
		if !d.dropping() {
			if err := d.spend(int64(len(line)), 0, 1); err != nil {
				return false, err
			}
		}
		return d.end(Value{Kind: KindNil}), nil
	}
	if !d.dropping() {
		var err error
		if n > d.Limits.MaxBulk {
			err = d.overLimit(fmt.Errorf("%w: a bulk string of more than %d bytes", ErrTooLarge, d.Limits.MaxBulk))
		} else {
			err = d.spend(int64(len(line))+2, n, 1)
		}
		if err != nil {
			return false, err
		}
	}
	if d.dropping() {
		// Dropped: it must fit what may still be discarded.
		if room := d.Discard - d.dropped; room < 2 || n > room-2 {
			return false, d.tooLarge
		}
	} else if !d.NoValues {
		d.bulk = d.alloc(int(n) + 2)
	}
	d.bulkLeft = n + 2
	return false, nil
}

func (d *Decoder) arrayHeader(line, body []byte) (bool, error) {
	n, ok := parseLen(body)
	if !ok {
		return false, ErrProtocol
	}
	if !d.dropping() {
		var err error
		switch {
		case n > d.Limits.MaxArray:
			err = d.overLimit(fmt.Errorf("%w: an array of more than %d elements", ErrTooLarge, d.Limits.MaxArray))
		case n > 0 && len(d.frames) >= d.Limits.MaxDepth:
			err = d.overLimit(fmt.Errorf("%w: arrays nested more than %d deep", ErrTooLarge, d.Limits.MaxDepth))
		default:
			err = d.spend(int64(len(line)), max(n, 0), ValueSize)
		}
		if err != nil {
			return false, err
		}
	}
	switch {
	case n == -1:
		return d.end(Value{Kind: KindNil}), nil
	case n == 0:
		return d.end(Value{Kind: KindArray, Elems: []Value{}}), nil
	case d.dropping():
		// Each element takes 3 bytes at least ("+\r\n").
		if n > (d.Discard-d.dropped)/3 {
			return false, d.tooLarge
		}
		d.skip += n - 1
		return false, nil
	}
	f := frame{left: n}
	if !d.NoValues {
		f.elems = make([]Value, n)
	}
	d.frames = append(d.frames, f)
	return false, nil
}

// spend charges base plus count times size to the budget, checking
// before any arithmetic can overflow (count and size are not negative,
// size is not 0); beyond it the reply is over its limits.
func (d *Decoder) spend(base, count, size int64) error {
	left := d.Budget - base
	if left < 0 || count > left/size {
		return d.overLimit(fmt.Errorf("%w: more than the budget of this read", ErrTooLarge))
	}
	cost := base + count*size
	if d.Reserve != nil && !d.Reserve.Reserve(cost) {
		return d.overLimit(ErrNoMemory)
	}
	d.Budget -= cost
	return nil
}

// overLimit starts dropping the current reply for reason, or fails the
// stream with it when nothing may be discarded.
func (d *Decoder) overLimit(reason error) error {
	if d.Discard <= 0 {
		return reason
	}
	d.tooLarge = reason
	// The value being read, and the elements after the one being read in
	// each open array, are still to end.
	d.skip = 1
	for _, f := range d.frames {
		d.skip += f.left - 1
	}
	d.frames = d.frames[:0]
	d.bulk = nil
	if d.skip > (d.Discard-d.dropped)/3+1 {
		return reason
	}
	return nil
}

// end records that a value ended, and with it every array it completes;
// it reports whether the reply ended.
func (d *Decoder) end(v Value) bool {
	if d.dropping() {
		d.skip--
		return d.skip == 0
	}
	for len(d.frames) > 0 {
		f := &d.frames[len(d.frames)-1]
		if f.elems != nil {
			f.elems[int64(len(f.elems))-f.left] = v
		}
		f.left--
		if f.left > 0 {
			return false
		}
		v = Value{Kind: KindArray, Elems: f.elems}
		d.frames = d.frames[:len(d.frames)-1]
	}
	d.value = v
	return true
}

// alloc returns n bytes for a reply string. Small strings share chunks:
// one allocation for many replies (a pipeline) rather than one each.
func (d *Decoder) alloc(n int) []byte {
	const maxChunk = 8 << 10
	if n > maxChunk/4 {
		return make([]byte, n)
	}
	if cap(d.arena)-len(d.arena) < n {
		// Start small (most reads are one short reply), double up to
		// maxChunk.
		c := max(256, min(2*cap(d.arena), maxChunk), n)
		d.arena = make([]byte, 0, c)
	}
	l := len(d.arena)
	d.arena = d.arena[:l+n]
	return d.arena[l : l+n : l+n]
}

// parseLen parses a length: -1, or canonical digits; a length beyond
// math.MaxInt64 is math.MaxInt64, beyond every limit anyway.
func parseLen(b []byte) (int64, bool) {
	if string(b) == "-1" {
		return -1, true
	}
	n, over, ok := parseUint(b)
	if over {
		return math.MaxInt64, ok
	}
	return n, ok
}

// parseInt parses a canonical 64-bit integer.
func parseInt(b []byte) (int64, bool) {
	if len(b) > 1 && b[0] == '-' && b[1] != '0' {
		if string(b) == "-9223372036854775808" {
			return math.MinInt64, true
		}
		n, over, ok := parseUint(b[1:])
		return -n, ok && !over
	}
	n, over, ok := parseUint(b)
	return n, ok && !over
}

// parseUint parses canonical decimal digits (no sign, no leading zero);
// over reports a number beyond math.MaxInt64.
func parseUint(b []byte) (n int64, over, ok bool) {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return 0, false, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		dg := int64(c - '0')
		if over || n > (math.MaxInt64-dg)/10 {
			over = true
			continue
		}
		n = n*10 + dg
	}
	return n, over, true
}

// dropping reports whether the current reply is being dropped.
func (d *Decoder) dropping() bool { return d.tooLarge != nil }
