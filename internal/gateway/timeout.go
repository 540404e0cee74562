package gateway

import (
	"bytes"
	"math/big"
	"strconv"
)

// Timeouts of blocking commands, bounded by Policy.MaxBlock.
//
// The bound holds only if the gateway reads a timeout as Redis does, and
// Redis is generous: seconds (BLPOP and family) go through strtold, which
// takes "0x0", "0x10000", "inf", exponents, and then converts
// seconds * 1000.0 to whole milliseconds (truncated, or rounded up in some
// versions), so -0.0001 (and in some versions 0.0001) becomes 0, which
// blocks forever; milliseconds (XREAD BLOCK, WAIT) go through
// string2ll, strict decimal. So the gateway takes seconds as plain decimal
// numbers only (the JSON number grammar, which is what clients send),
// computes their milliseconds exactly, and writes every timeout it keeps in
// a form whose truncation by Redis is that number of milliseconds; any
// other form is refused (400), never passed on.

// maxTimeoutLen bounds a seconds timeout's text; no client needs more.
const maxTimeoutLen = 64

var (
	errSeconds  = commandError("ERR timeout is not a float or out of range: the gateway takes decimal seconds, such as 0, 1.5 or 2e-3")
	errMillis   = commandError("ERR timeout is not an integer or out of range")
	errNegative = commandError("ERR timeout is negative")
)

// limitMillis is MaxBlock in milliseconds, at least 1 (a bound of 0 would
// be forever).
func (p Policy) limitMillis() int64 { return max(p.MaxBlock.Milliseconds(), 1) }

// boundSeconds checks the timeout in seconds at cmd[i] and replaces it by
// MaxBlock when it is 0 (forever) or longer.
func (p Policy) boundSeconds(cmd [][]byte, i int) error {
	ms, ok := secondsToMillis(cmd[i])
	switch {
	case !ok:
		return errSeconds
	case ms < 0:
		return errNegative
	case ms == 0 || ms > p.limitMillis():
		cmd[i] = appendSeconds(nil, p.limitMillis())
	case !isDigits(cmd[i]):
		cmd[i] = appendSeconds(nil, ms)
	}
	return nil
}

// boundMillis checks the timeout in milliseconds at cmd[i] and replaces it
// by MaxBlock when it is 0 (forever) or longer.
func (p Policy) boundMillis(cmd [][]byte, i int) error {
	ms, ok := string2ll(cmd[i])
	switch {
	case !ok:
		return errMillis
	case ms < 0:
		return errNegative
	case ms == 0 || ms > p.limitMillis():
		cmd[i] = strconv.AppendInt(nil, p.limitMillis(), 10)
	}
	return nil
}

// boundXRead bounds every BLOCK of an XREAD or XREADGROUP, found as Redis's
// xreadCommand finds them: options come before STREAMS, in any order and
// any number of times (the last BLOCK counts); GROUP takes two arguments
// (a group may be named STREAMS or BLOCK), BLOCK and COUNT one, NOACK none;
// anything else ends the options (Redis then refuses the command).
func (p Policy) boundXRead(cmd [][]byte) (Mode, error) {
	mode := ModeShared
	for i := 1; i < len(cmd); i++ {
		more := len(cmd) - i - 1
		switch o := cmd[i]; {
		case keyword(o, "BLOCK") && more > 0:
			i++
			if err := p.boundMillis(cmd, i); err != nil {
				return ModeShared, err
			}
			mode = ModeAlone
		case keyword(o, "COUNT") && more > 0:
			i++
		case keyword(o, "GROUP") && more >= 2:
			i += 2
		case keyword(o, "NOACK"):
		default:
			// STREAMS, or a syntax error.
			return mode, nil
		}
	}
	return mode, nil
}

// keyword reports whether arg is kw as Redis's strcasecmp sees it: up to a
// NUL, case-insensitive ("BLOCK\x00x" is BLOCK).
func keyword(arg []byte, kw string) bool {
	if i := bytes.IndexByte(arg, 0); i >= 0 {
		arg = arg[:i]
	}
	return bytes.EqualFold(arg, []byte(kw))
}

// secondsToMillis returns the milliseconds Redis would block for a timeout
// of s seconds, truncated toward zero as Redis does, when s is a decimal
// number: an optional '-', digits with an optional fraction, an optional
// exponent of at most two digits. ok is false for anything else.
func secondsToMillis(s []byte) (ms int64, ok bool) {
	if len(s) == 0 || len(s) > maxTimeoutLen || !isDecimal(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(string(s))
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(1000, 1))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() {
		// Longer than any bound, or negative beyond int64.
		if q.Sign() < 0 {
			return -1, true
		}
		return 1<<63 - 1, true
	}
	return q.Int64(), true
}

// isDecimal reports whether s is -?D+(.D*)?([eE][+-]?D{1,2})? or
// -?.D+(...)?, D a digit.
func isDecimal(s []byte) bool {
	i := 0
	if s[0] == '-' {
		i++
	}
	digits := 0
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 || exp > 2 {
			return false
		}
	}
	return i == len(s)
}

func isDigits(s []byte) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) > 0
}

// appendSeconds appends ms milliseconds as seconds Redis reads back as ms
// (or ms+1): whole seconds exactly, else with half a millisecond more, so
// that Redis's conversion of seconds * 1000.0 cannot round down to ms-1
// (0.001 * 1000.0 need not be 1 in floating point), never to 0.
func appendSeconds(b []byte, ms int64) []byte {
	b = strconv.AppendInt(b, ms/1000, 10)
	if ms%1000 == 0 {
		return b
	}
	frac := ms % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), '5')
	return b
}

// string2ll parses s as Redis's string2ll does: "0", or an optional '-'
// and digits without a leading zero, within int64 and 20 bytes.
func string2ll(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) >= 21 {
		return 0, false
	}
	if len(s) == 1 && s[0] == '0' {
		return 0, true
	}
	d := s
	if d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || d[0] < '1' || d[0] > '9' || !isDigits(d) {
		return 0, false
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	return v, err == nil
}
