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
		whole := newGuard(l)
		errWhole := whole.feed(b)

		split := newGuard(l)
		cut := int(at % uint(len(b)+1))
		errSplit := split.feed(b[:cut])
		if errSplit == nil {
			errSplit = split.feed(b[cut:])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("feed(%q) whole: %v; split at %d: %v", b, errWhole, cut, errSplit)
		}
	})
}
