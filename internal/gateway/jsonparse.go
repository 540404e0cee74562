package gateway

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The request bodies the protocol carries are JSON arrays of scalars (one
// command) or arrays of such arrays (a pipeline). encoding/json decoding
// them through reflection into [][]json.RawMessage took 41% of the
// gateway's CPU on a /pipeline of 100 commands, so this small parser reads
// exactly that grammar: strings without escapes are sliced from the body
// without a copy. FuzzParseCommands checks it against encoding/json.

type jsonParser struct {
	b []byte
	i int
	// cmds and args are how many more commands and arguments the body
	// may hold: a 10 MiB /pipeline of [1],[1],... is millions of slices.
	cmds, args int
}

// tooMany is the error of a body beyond its parser's bounds.
func (p *jsonParser) tooMany() error {
	return commandError("ERR too many commands or arguments in one request: send fewer per request")
}

var errJSONSyntax = commandError("ERR invalid JSON")

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// expect consumes c after optional whitespace.
func (p *jsonParser) expect(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *jsonParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// command reads an array of scalars: strings, numbers (as their text) and
// booleans ("true", "false").
func (p *jsonParser) command() ([][]byte, error) {
	if !p.expect('[') {
		return nil, errJSONSyntax
	}
	args := make([][]byte, 0, 4)
	if p.expect(']') {
		return args, nil
	}
	for {
		if p.args--; p.args < 0 {
			return nil, p.tooMany()
		}
		a, err := p.scalar()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		if p.expect(',') {
			continue
		}
		if p.expect(']') {
			return args, nil
		}
		return nil, errJSONSyntax
	}
}

// commands reads an array of commands.
func (p *jsonParser) commands() ([][][]byte, error) {
	if !p.expect('[') {
		return nil, errJSONSyntax
	}
	var cmds [][][]byte
	if p.expect(']') {
		return cmds, nil
	}
	for {
		if p.peek() != '[' {
			return nil, errJSONSyntax
		}
		if p.cmds--; p.cmds < 0 {
			return nil, p.tooMany()
		}
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
		if p.expect(',') {
			continue
		}
		if p.expect(']') {
			return cmds, nil
		}
		return nil, errJSONSyntax
	}
}

var errNotScalar = commandError("ERR arguments must be strings, numbers or booleans")

func (p *jsonParser) scalar() ([]byte, error) {
	switch c := p.peek(); {
	case c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		if _, err := p.literal("null"); err != nil {
			return nil, err
		}
		return nil, errNotScalar
	case c == '[' || c == '{':
		return nil, errNotScalar
	default:
		return nil, errJSONSyntax
	}
}

func (p *jsonParser) literal(lit string) ([]byte, error) {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return nil, errJSONSyntax
	}
	s := p.b[p.i : p.i+len(lit)]
	p.i += len(lit)
	return s, nil
}

// number reads a number by JSON's grammar and returns its text.
func (p *jsonParser) number() ([]byte, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, errJSONSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	return p.b[start:p.i], nil
}

// str reads a string. Without escapes it is a slice of the body; with
// them, a decoded copy. Invalid UTF-8 passes through as bytes.
func (p *jsonParser) str() ([]byte, error) {
	p.i++ // the opening quote
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return nil, errJSONSyntax
		default:
			p.i++
		}
	}
	return nil, errJSONSyntax
}

func (p *jsonParser) escaped(start int) ([]byte, error) {
	out := append(make([]byte, 0, p.i-start+16), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return out, nil
		case c < 0x20:
			return nil, errJSONSyntax
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, errJSONSyntax
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, errJSONSyntax
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; a lone surrogate is U+FFFD, as
				// encoding/json decodes it.
				r2 := rune(-1)
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					if v, ok := p.hex4(); ok {
						r2 = v
					}
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						p.i = save
						r2 = -1
					}
				}
				if r2 >= 0 {
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errJSONSyntax
		}
	}
	return nil, errJSONSyntax
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(uint16(v)), true
}
