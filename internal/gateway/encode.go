package gateway

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// appendValue appends v as JSON: strings (status and bulk replies), at every
// depth, as JSON strings, or as standard base64 of their exact bytes when
// b64 (Upstash-Encoding: base64); integers as numbers; nil as null; arrays as
// arrays. An error inside an array (EXEC's, or a script's) is its text,
// never encoded.
func appendValue(b []byte, v resp.Value, b64 bool) []byte {
	switch v.Kind {
	case resp.KindStatus, resp.KindBulk:
		if b64 {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, v.Str)
			return append(b, '"')
		}
		return appendString(b, v.Str)
	case resp.KindError:
		return appendString(b, v.Str)
	case resp.KindInt:
		return strconv.AppendInt(b, v.Int, 10)
	case resp.KindArray:
		b = append(b, '[')
		for i, e := range v.Elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e, b64)
		}
		return append(b, ']')
	default:
		return append(b, "null"...)
	}
}

// appendReply appends {"result": v} or, for an error reply, {"error": text}.
func appendReply(b []byte, v resp.Value, b64 bool) []byte {
	if v.Kind == resp.KindError {
		return appendError(b, string(v.Str))
	}
	b = append(b, `{"result":`...)
	b = appendValue(b, v, b64)
	return append(b, '}')
}

func appendError(b []byte, msg string) []byte {
	b = append(b, `{"error":`...)
	b = appendString(b, []byte(msg))
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; bytes that are not UTF-8 become
// U+FFFD, as encoding/json does (base64 is the binary-safe encoding).
func appendString(b []byte, s []byte) []byte {
	b = append(b, '"')
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
	b = append(b, s[start:]...)
	return append(b, '"')
}
