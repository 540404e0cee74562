package gateway

import (
	"encoding/base64"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// An encoder writes replies as JSON into buf, and hands buf to w (when
// set) whenever it holds flushAt bytes: a reply of any size is encoded in
// pieces of bounded size (strings a chunk at a time), so that a 64 MiB value
// of NUL bytes, 384 MiB as JSON, never exists whole.
type encoder struct {
	buf []byte
	w   io.Writer
	err error
	// n counts the bytes handed to w.
	n int64
	// b64 encodes strings as base64 (Upstash-Encoding: base64).
	b64 bool
}

// Bounds of an encoder's pieces.
const (
	flushAt = 32 << 10
	// strChunk is how much of a string is escaped at once (at most 6
	// bytes of JSON each); b64Chunk, a multiple of 3, encoded at once.
	strChunk = 4 << 10
	b64Chunk = 3 << 10
)

// flush hands buf to w once it is large enough, or always when force.
func (e *encoder) flush(force bool) {
	if e.w == nil || e.err != nil || len(e.buf) == 0 || !force && len(e.buf) < flushAt {
		return
	}
	_, e.err = e.w.Write(e.buf)
	e.n += int64(len(e.buf))
	e.buf = e.buf[:0]
}

// value writes v: strings (status and bulk replies), at every depth, as
// JSON strings, or as standard base64 of their exact bytes when b64;
// integers as numbers; nil as null; arrays as arrays. An error inside an
// array (EXEC's, or a script's) is its text, never encoded.
func (e *encoder) value(v resp.Value) {
	switch v.Kind {
	case resp.KindStatus, resp.KindBulk:
		if e.b64 {
			e.base64(v.Str)
			return
		}
		e.string(v.Str)
	case resp.KindError:
		e.string(v.Str)
	case resp.KindInt:
		e.buf = strconv.AppendInt(e.buf, v.Int, 10)
	case resp.KindArray:
		e.list(v.Elems)
	default:
		e.buf = append(e.buf, "null"...)
	}
	e.flush(false)
}

// list writes vs as a JSON array of values.
func (e *encoder) list(vs []resp.Value) {
	e.buf = append(e.buf, '[')
	for i, v := range vs {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.value(v)
	}
	e.buf = append(e.buf, ']')
}

// replies writes vs as a JSON array of replies (see reply): /pipeline's
// and /multi-exec's. sha(i) is what command i's SCRIPT LOAD answers.
func (e *encoder) replies(vs []resp.Value, sha func(int) string) {
	e.buf = append(e.buf, '[')
	for i, v := range vs {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.reply(v, sha(i))
	}
	e.buf = append(e.buf, ']')
}

// reply writes {"result": v} or, for an error reply, {"error": text}; a
// bulk reply is sha instead when sha is set.
func (e *encoder) reply(v resp.Value, sha string) {
	if v.Kind == resp.KindError {
		e.error(v.Str)
		return
	}
	if sha != "" && v.Kind == resp.KindBulk {
		v.Str = []byte(sha)
	}
	e.buf = append(e.buf, `{"result":`...)
	e.value(v)
	e.buf = append(e.buf, '}')
}

// error writes {"error": msg}.
func (e *encoder) error(msg []byte) {
	e.buf = append(e.buf, `{"error":`...)
	e.string(msg)
	e.buf = append(e.buf, '}')
}

// string writes s as a JSON string, a chunk at a time. A chunk never ends
// inside a UTF-8 sequence, so the result is the same as in one piece.
func (e *encoder) string(s []byte) {
	e.buf = append(e.buf, '"')
	for len(s) > strChunk {
		cut := strChunk
		for back := 0; back < utf8.UTFMax-1 && !utf8.RuneStart(s[cut]); back++ {
			cut--
		}
		e.buf = appendEscaped(e.buf, s[:cut])
		s = s[cut:]
		e.flush(false)
	}
	e.buf = appendEscaped(e.buf, s)
	e.buf = append(e.buf, '"')
}

func (e *encoder) base64(s []byte) {
	e.buf = append(e.buf, '"')
	for len(s) > b64Chunk {
		e.buf = base64.StdEncoding.AppendEncode(e.buf, s[:b64Chunk])
		s = s[b64Chunk:]
		e.flush(false)
	}
	e.buf = base64.StdEncoding.AppendEncode(e.buf, s)
	e.buf = append(e.buf, '"')
}

// appendValue appends v as JSON (see encoder.value).
func appendValue(b []byte, v resp.Value, b64 bool) []byte {
	e := encoder{buf: b, b64: b64}
	e.value(v)
	return e.buf
}

func appendError(b []byte, msg string) []byte {
	e := encoder{buf: b}
	e.error([]byte(msg))
	return e.buf
}

// appendString appends s as a JSON string.
func appendString(b []byte, s []byte) []byte {
	e := encoder{buf: b}
	e.string(s)
	return e.buf
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s escaped for a JSON string; bytes that are not
// UTF-8 become U+FFFD, as encoding/json does (base64 is the binary-safe
// encoding).
func appendEscaped(b []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but not valid JavaScript
		// source; escape them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
