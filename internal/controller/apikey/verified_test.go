package apikey

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	goredis "github.com/redis/go-redis/v9"
)

// msgUpToDate is what the managed reconciler logs (at debug level) when it
// verified an external resource and found nothing to change.
const msgUpToDate = "External resource is up to date"

// verified counts, from the reconciler's debug log, the ApiKeys found up to
// date: a test learns that every key was re-verified without a hook in the
// provider.
type verified struct {
	mu   sync.Mutex
	seen map[string]bool
}

// sink returns a logr sink that records msgUpToDate and passes every entry
// on to next.
func (v *verified) sink(next logr.LogSink) logr.LogSink { return &verifiedSink{v: v, next: next} }

// reset forgets what was seen.
func (v *verified) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen = nil
}

// count returns how many distinct ApiKeys were found up to date.
func (v *verified) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}

type verifiedSink struct {
	v      *verified
	next   logr.LogSink
	values []any
}

func (s *verifiedSink) Init(ri logr.RuntimeInfo)               { s.next.Init(ri) }
func (s *verifiedSink) Enabled(level int) bool                 { return true }
func (s *verifiedSink) Error(err error, msg string, kv ...any) { s.next.Error(err, msg, kv...) }

func (s *verifiedSink) Info(level int, msg string, kv ...any) {
	if msg == msgUpToDate {
		all := append(append([]any{}, s.values...), kv...)
		for i := 0; i+1 < len(all); i += 2 {
			if k, _ := all[i].(string); k == "request" {
				s.v.mu.Lock()
				if s.v.seen == nil {
					s.v.seen = map[string]bool{}
				}
				s.v.seen[toString(all[i+1])] = true
				s.v.mu.Unlock()
			}
		}
	}
	if s.next.Enabled(level) {
		s.next.Info(level, msg, kv...)
	}
}

func (s *verifiedSink) WithValues(kv ...any) logr.LogSink {
	return &verifiedSink{v: s.v, next: s.next.WithValues(kv...), values: append(append([]any{}, s.values...), kv...)}
}

func (s *verifiedSink) WithName(name string) logr.LogSink {
	return &verifiedSink{v: s.v, next: s.next.WithName(name), values: s.values}
}

func toString(v any) string {
	if s, ok := v.(interface{ String() string }); ok {
		return s.String()
	}
	s, _ := v.(string)
	return s
}

// aclWrites returns how many ACL SETUSER and ACL DELUSER a Redis ran since
// its statistics were last reset (CONFIG RESETSTAT).
func aclWrites(t testing.TB, c *goredis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("cannot get Redis command statistics: %v", err)
	}
	n := 0
	for l := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok || (name != "cmdstat_acl|setuser" && name != "cmdstat_acl|deluser") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		c, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("cannot parse Redis command statistics %q: %v", l, err)
		}
		n += c
	}
	return n
}
