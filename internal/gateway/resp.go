package gateway

import (
	"github.com/ai-decenter/redishttp/internal/resp"
)

// The gateway speaks RESP2 to Redis through the small client in this file,
// conn.go and internal/resp rather than go-redis, for three reasons
// measured or required here:
//   - identity per request without a round trip on the hot path: a
//     connection stays authenticated as the identity that used it last
//     (redis.go); go-redis's pool runs AUTH as its own round trip on
//     connect and has no notion of a connection's identity;
//   - replies are untrusted input (a tenant controls its data and its Lua):
//     every reply is read against Limits (bulk size, array length, nesting,
//     total bytes) and turned into a JSON error when it is too big, where
//     go-redis allocates whatever length the server announces;
//   - the reply must be relayed as it is (strings, integers, nil, nested
//     arrays, errors at any depth), not mapped to Go types per command.

// Limits bound what one request may read from Redis.
type Limits struct {
	// MaxReplyBytes bounds the cost of all replies of one request: their
	// bytes, and resp.ValueSize per array element.
	MaxReplyBytes int64
	// MaxArrayLen bounds the elements of one array reply.
	MaxArrayLen int64
	// MaxDepth bounds the nesting of arrays.
	MaxDepth int
}

// DefaultLimits are the limits unless flags say otherwise.
var DefaultLimits = Limits{MaxReplyBytes: 64 << 20, MaxArrayLen: 1 << 20, MaxDepth: 32}

// ErrReplyTooLarge is returned when a reply exceeds Limits.
var ErrReplyTooLarge = resp.ErrTooLarge

// Bounds of reading replies.
const (
	// maxSkipBytes bounds what is read and dropped of a reply too large
	// for its request, so that its connection (and the replies after it:
	// other requests' in a batched round) can still be read: a larger
	// reply closes the connection instead.
	maxSkipBytes = 16 << 20
	// maxLine bounds a status or error line (a script may return any).
	maxLine = 64 << 10
	// authBudget bounds the replies to RESET, AUTH and PING.
	authBudget = 4 << 10
)

// resp returns the limits of the reader of one reply.
func (l Limits) resp() resp.Limits {
	return resp.Limits{MaxBulk: l.MaxReplyBytes, MaxArray: l.MaxArrayLen, MaxDepth: l.MaxDepth, MaxLine: maxLine}
}
