package redis

import (
	"testing"
)

// FuzzGuard feeds the guard arbitrary streams: it never panics, and whether
// it refuses a stream does not depend on how the stream is split into reads.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n:1\r\n$-1\r\n", "*10000000000000\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "HTTP/1.1 200 OK\r\n", "$-2\r\n",
	} {
		f.Add([]byte(s), uint(len(s)/2))
	}
	l := Limits{MaxBulk: 64, MaxElements: 16, MaxDepth: 4, MaxLine: 32, MaxReply: 256}
	f.Fuzz(func(t *testing.T, b []byte, at uint) {
		whole := guard{l: l}
		errWhole := whole.feed(b)

		split := guard{l: l}
		cut := int(at % uint(len(b)+1))
		errSplit := split.feed(b[:cut])
		if errSplit == nil {
			errSplit = split.feed(b[cut:])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("feed(%q) whole: %v; split at %d: %v", b, errWhole, cut, errSplit)
		}
		if len(whole.open) > l.MaxDepth || len(whole.line) > l.MaxLine || whole.reply > l.MaxReply {
			t.Fatalf("feed(%q) went past its limits: depth %d, line %d, reply %d", b, len(whole.open), len(whole.line), whole.reply)
		}
	})
}
