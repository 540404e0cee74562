package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"

	"github.com/valyala/fasthttp"
)

// Request bodies are memory of the process like replies are. fasthttp reads
// a whole body before the handler runs unless told to stream it: bodies in
// flight were bounded by MaxRequestBytes per connection only, so one token
// (or a forged one: a body arrives before Redis checks its token) sending
// 10 MiB bodies slowly on a thousand connections held 10 GiB. The server
// streams bodies instead (fasthttp reads at most 8 KiB of one ahead), and
// readBody reads the rest of a body only once its size is taken from the
// memory for requests in flight (see memory), from its identity's share:
// the same process-wide bound as the replies, fair between identities.

// readBody reads the body of a request of id into ctx's request (what
// PostBody returns) and returns what gives its memory back once the
// request is answered, or the status of the response that refused the
// body. A refused body is left unread and its connection closed: one
// above MaxRequestBytes (413), one whose identity Redis does not accept
// (401: a well-formed token is not a valid one, and each forged token
// would otherwise take an identity's share, all of them together the
// whole memory), one whose identity's share is taken (503).
//
// A body is charged what its buffer holds: its size, or the capacity of
// the pooled buffer it is read into, which is at most twice that (or
// minBodyBuf): a body of 8 KiB and a byte, held, took a 1 MiB buffer
// from the pool and was charged 8 KiB.
func (s *Server) readBody(ctx *fasthttp.RequestCtx, id Identity) (func(), int) {
	cl := ctx.Request.Header.ContentLength()
	stream := ctx.RequestBodyStream()
	if cl == 0 || cl == -2 || stream == nil {
		// No body (-2: neither Content-Length nor chunked), or one read
		// already (a server that does not stream bodies).
		return func() {}, 0
	}
	n := int64(cl)
	if cl < 0 {
		// Chunked: its size is known once read, up to the bound.
		n = s.cfg.MaxRequestBytes
	}
	if n > s.cfg.MaxRequestBytes {
		s.unread(ctx)
		return nil, s.tooLarge(ctx)
	}
	// Not ctx: see serve.
	if err := s.redis.Check(context.Background(), id); err != nil {
		s.unread(ctx)
		return nil, s.redisFailed(ctx, err)
	}
	buf := s.getBuf()
	if int64(cap(buf)) > 2*max(n, minBodyBuf) {
		// Held while the body arrives, a pooled buffer far larger than
		// the body would hold memory nobody is charged for.
		s.putBuf(buf)
		buf = nil
	}
	charge := max(n, int64(cap(buf)))
	if !s.redis.mem.take(id.tag, charge) {
		s.putBuf(buf)
		s.unread(ctx)
		return nil, s.busy(ctx, "the gateway is short of memory for requests in flight: retry later, or send less per request")
	}
	release := func() {
		s.putBuf(buf)
		s.redis.mem.give(id.tag, charge)
	}
	var err error
	if buf, err = readAtMost(stream, buf, cl, n); err != nil {
		release()
		ctx.SetConnectionClose()
		var ne net.Error
		switch {
		case errors.Is(err, errBodyTooLarge):
			lingerOnClose(ctx)
			return nil, s.tooLarge(ctx)
		case errors.As(err, &ne) && ne.Timeout():
			return nil, s.fail(ctx, http.StatusRequestTimeout, "the request was not received in time")
		default:
			return nil, s.fail(ctx, http.StatusBadRequest, "cannot read the request body")
		}
	}
	ctx.Request.SetBodyRaw(buf)
	return release, 0
}

// unread closes the connection of a request whose body is refused unread,
// gracefully (see lingerConn), rather than letting the server read and
// discard the body to reuse the connection.
func (s *Server) unread(ctx *fasthttp.RequestCtx) {
	if cl := ctx.Request.Header.ContentLength(); cl == 0 || cl == -2 {
		return
	}
	ctx.SetConnectionClose()
	lingerOnClose(ctx)
}

var errBodyTooLarge = errors.New("request body too large")

// minBodyBuf is the size below which a pooled buffer is used for any body.
const minBodyBuf = 4 << 10

// readAtMost appends to buf the body r streams, of length cl (-1: chunked,
// then at most n bytes).
func readAtMost(r io.Reader, buf []byte, cl int, n int64) ([]byte, error) {
	if cl >= 0 {
		buf = slices.Grow(buf[:0], cl)[:cl]
		if _, err := io.ReadFull(r, buf); err != nil {
			return buf, fmt.Errorf("cannot read the request body: %w", err)
		}
		return buf, nil
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(int64(max(cap(buf), 4<<10)), n+1-int64(len(buf)))))
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		switch {
		case int64(len(buf)) > n:
			return buf, errBodyTooLarge
		case errors.Is(err, io.EOF):
			return buf, nil
		case err != nil:
			return buf, fmt.Errorf("cannot read the request body: %w", err)
		}
	}
}
