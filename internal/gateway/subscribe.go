package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// streamHeader starts a subscription's response: a stream of server-sent
// events, chunked for an HTTP/1.1 client, until the connection closes for
// an HTTP/1.0 one. X-Accel-Buffering stops an NGINX ingress from buffering
// the events.
const (
	streamHeader = "Content-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\n"
	streamHeader11 = "HTTP/1.1 200 OK\r\n" + streamHeader + "Transfer-Encoding: chunked\r\n\r\n"
	streamHeader10 = "HTTP/1.0 200 OK\r\n" + streamHeader + "Connection: close\r\n\r\n"
)

// subscribe streams a SUBSCRIBE (or PSUBSCRIBE) as server-sent events, one
// "data: <kind>,<channel>[,...]" event per Redis message, the way
// @upstash/redis reads them. The stream runs on a Redis connection of its
// own, authenticated before anything is subscribed (so a refused token or
// an unreachable Redis is an ordinary JSON error), and ends when the client
// goes away, when Redis closes the connection (ACL DELUSER does), when the
// token stops verifying (checked every VerifyTTL, so within a second of a
// key's removal) or when the gateway shuts down.
//
// The stream takes the HTTP connection over from the HTTP server (a
// fasthttp hijack): it writes its own response and reads the connection
// to learn at once when the client leaves, as the JS client's unsubscribe
// is closing its request.
func (s *Server) subscribe(ctx *fasthttp.RequestCtx, id Identity, path string, start time.Time) int {
	if ctx.IsHead() {
		return s.fail(ctx, http.StatusMethodNotAllowed, "method HEAD is not allowed on a subscription: use POST")
	}
	kind, p := "SUBSCRIBE", strings.TrimPrefix(path, "/subscribe/")
	if rest, ok := strings.CutPrefix(path, "/psubscribe/"); ok {
		kind, p = "PSUBSCRIBE", rest
	}
	args := [][]byte{[]byte(kind)}
	for seg := range strings.SplitSeq(p, "/") {
		d, err := url.PathUnescape(seg)
		if err != nil || d == "" {
			return s.fail(ctx, http.StatusBadRequest, "ERR invalid channel in the path")
		}
		args = append(args, []byte(d))
	}
	if len(args)-1 > maxChannels {
		return s.fail(ctx, http.StatusBadRequest, fmt.Sprintf("ERR at most %d channels or patterns in one subscription", maxChannels))
	}
	if !s.tokenSubs.take(id.tag) {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		return s.fail(ctx, http.StatusTooManyRequests, fmt.Sprintf("too many subscriptions of this token: at most %d at once", s.tokenSubs.max))
	}
	select {
	case s.subs <- struct{}{}:
	default:
		s.tokenSubs.give(id.tag)
		return s.fail(ctx, http.StatusServiceUnavailable, "too many subscriptions on this gateway")
	}
	c, confirmed, status := s.subscribed(ctx, id, args)
	if c == nil {
		<-s.subs
		s.tokenSubs.give(id.tag)
		return status
	}
	http11 := ctx.Request.Header.IsHTTP11()
	// The slots and c are released once, by the stream when it ends, or
	// when the connection closes without the stream ever starting (see
	// atClose).
	var once sync.Once
	release := func() {
		once.Do(func() {
			c.close()
			<-s.subs
			s.tokenSubs.give(id.tag)
		})
	}
	atClose(ctx, release)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(nc net.Conn) {
		defer release()
		defer func() { s.recovered(recover()) }()
		s.cfg.Metrics.subscriptions(1)
		defer s.cfg.Metrics.subscriptions(-1)
		s.stream(nc, c, id, http11, confirmed)
		s.cfg.Metrics.observe(RouteSubscribe, http.StatusOK, time.Since(start))
	})
	return 0
}

// maxChannels bounds the channels (or patterns) of one stream. Redis
// keeps each subscription in memory that counts against maxmemory: a
// path of 16 KiB named 2,000 channels, and one key's streams put 100 MiB
// into Redis (evicting others' keys). @upstash/redis subscribes one
// channel per stream.
const maxChannels = 64

// subscribed returns a Redis connection authenticated as id and subscribed
// with args (SUBSCRIBE or PSUBSCRIBE), and the events of Redis's
// confirmations; or nil and the status of the error answered. Redis checks
// the ACL of every channel before subscribing any: a refusal (NOPERM) is
// the confirmation's place, answered as Redis's own error with 400, and
// holds no slot.
func (s *Server) subscribed(ctx *fasthttp.RequestCtx, id Identity, args [][]byte) (*conn, []byte, int) {
	c, err := dial(context.Background(), s.redis.pool.addr, s.redis.pool.dialTimeout, time.Now().Add(s.redis.pool.dialTimeout), s.redis.limits)
	if err != nil {
		return nil, nil, s.redisFailed(ctx, ioErr(err))
	}
	// Authenticate and wait for the verdict before subscribing.
	now := time.Now()
	_ = c.nc.SetDeadline(now.Add(s.redis.timeout))
	if err := s.redis.authenticate(c, id, now); err != nil {
		c.close()
		return nil, nil, s.redisFailed(ctx, err)
	}
	c.wb = resp.AppendCommand(c.wb[:0], args...)
	if _, err := c.nc.Write(c.wb); err != nil {
		c.close()
		return nil, nil, s.redisFailed(ctx, ioErr(err))
	}
	// One confirmation per channel, or one error.
	var events []byte
	for range args[1:] {
		c.rd.Start(s.redis.limits.MaxReplyBytes)
		v, err := c.rd.Read()
		if err != nil {
			c.close()
			return nil, nil, s.redisFailed(ctx, ioErr(err))
		}
		if v.IsError() {
			c.close()
			return nil, nil, s.fail(ctx, http.StatusBadRequest, string(v.Str))
		}
		events = appendEvent(events, v)
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, events, 0
}

// stream relays c's messages to the client on nc until one of them goes
// away. Each event must be written within WriteTimeout: a client that
// stops reading does not hold its stream, and its Redis connection, for
// ever.
//
// Messages are read as Redis sends them, whatever the client reads: a
// message the gateway has not read waits in Redis, in the subscriber's
// output buffer, which counts against maxmemory (one key's streams whose
// clients read nothing made Redis evict every other key's data). A message
// is memory of the process like a reply: charged to id's share from its
// first byte read until its event is written, and at most maxQueued wait
// to be written; a message the memory cannot hold, or a client that far
// behind, ends the stream. Events are written a piece at a time, never
// whole (a message of line breaks is seven times its size as an event).
func (s *Server) stream(nc net.Conn, c *conn, id Identity, http11 bool, confirmed []byte) {
	_ = nc.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	queue := make(chan queued, maxQueued)
	// What the messages left unwritten hold goes back once the reader
	// below is done.
	defer func() {
		for q := range queue {
			s.redis.mem.give(id.tag, q.held)
		}
	}()
	// nc is the HTTP server's again once stream returns: nothing may use
	// it after, so wait for the goroutines below.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Close the Redis connection when the client leaves, the token stops
	// verifying or the gateway shuts down; the reader below then ends,
	// and a write blocked on a client that does not read fails.
	var ended atomic.Bool
	end := func() {
		ended.Store(true)
		c.close()
		_ = nc.SetWriteDeadline(time.Unix(1, 0))
	}
	read := make(chan struct{})
	wg.Go(func() {
		defer close(read)
		_, _ = io.Copy(io.Discard, nc)
		cancel()
	})
	// The HTTP server reuses the connection's reader once the stream
	// returns: stop reading before.
	defer func() {
		_ = nc.SetReadDeadline(time.Unix(1, 0))
		<-read
	}()
	// A panic in the goroutines below, which fasthttp does not recover,
	// would end the process: it ends the stream.
	wg.Go(func() {
		defer func() {
			if s.recovered(recover()) {
				end()
			}
		}()
		t := time.NewTicker(VerifyTTL)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				c.close()
				return
			case <-s.closing:
				end()
				return
			case <-t.C:
				if err := s.redis.Verify(ctx, id); errors.Is(err, ErrUnauthorized) {
					end()
					return
				}
			}
		}
	})
	wg.Go(func() {
		defer close(queue)
		defer c.close()
		defer func() { s.recovered(recover()) }()
		for {
			msg := &call{id: id.tag, mem: s.redis.mem}
			c.rd.Reserve = msg
			c.rd.Start(s.redis.limits.MaxReplyBytes)
			v, err := c.rd.Read()
			// Keep only what the message takes of the memory taken
			// for it (a chunk at a time, see Reserve).
			s.redis.mem.give(id.tag, msg.spare)
			q := queued{v: v, held: msg.held - msg.spare}
			if err != nil || v.Kind != resp.KindArray {
				s.redis.mem.give(id.tag, q.held)
				if err != nil {
					return
				}
				continue
			}
			select {
			case queue <- q:
			default:
				s.redis.mem.give(id.tag, q.held)
				return
			}
		}
	})

	bw := bufio.NewWriter(nc)
	// Each event, the stream's header and its end are written within
	// WriteTimeout from when their writing starts: an event larger than
	// bw is written through to nc as it is encoded.
	send := func(write func() error) error {
		_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if err := write(); err != nil {
			return err
		}
		return bw.Flush()
	}
	var w io.Writer = bw
	header := streamHeader10
	if http11 {
		w, header = httputil.NewChunkedWriter(bw), streamHeader11
	}
	if send(func() error {
		if _, err := bw.WriteString(header); err != nil {
			return err
		}
		_, err := w.Write(confirmed)
		return err
	}) != nil {
		return
	}
	var ev []byte
	for q := range queue {
		var err error
		if !ended.Load() {
			err = send(func() error {
				ev, err = writeEvent(w, ev, q.v)
				return err
			})
		}
		s.redis.mem.give(id.tag, q.held)
		if err != nil {
			return
		}
	}
	// Redis or the gateway ended the stream: end the response (an
	// HTTP/1.0 one ends with the connection).
	if cw, ok := w.(io.WriteCloser); ok && ctx.Err() == nil {
		_ = send(func() error {
			if err := cw.Close(); err != nil {
				return err
			}
			_, err := bw.WriteString("\r\n")
			return err
		})
	}
}

// A queued message waits to be written; held is the memory it holds.
type queued struct {
	v    resp.Value
	held int64
}

// maxQueued bounds the messages a stream holds, read from Redis but not
// written to its client yet.
const maxQueued = 1024

// eventPiece is the size of the pieces an event is written in, at most
// twice that: a string is encoded an eighth of it at a time (a byte is at
// most seven bytes of an event).
const eventPiece = 32 << 10

// writeEvent writes the event of v (see appendEvent) to w a piece of
// about eventPiece bytes at a time, through buf, and returns buf for
// reuse (a small one only).
func writeEvent(w io.Writer, buf []byte, v resp.Value) ([]byte, error) {
	var err error
	put := func() {
		if err == nil && len(buf) > 0 {
			_, err = w.Write(buf)
		}
		buf = buf[:0]
	}
	buf = append(buf[:0], "data: "...)
	for i, e := range v.Elems {
		if i > 0 {
			buf = append(buf, ',')
		}
		if e.Kind == resp.KindInt {
			buf = strconv.AppendInt(buf, e.Int, 10)
			continue
		}
		for s := e.Str; len(s) > 0; {
			n := min(len(s), eventPiece/8)
			if s[n-1] == '\r' && n < len(s) {
				// A CRLF is one line break: never split.
				n++
			}
			buf = appendData(buf, s[:n])
			s = s[n:]
			if len(buf) >= eventPiece {
				put()
			}
		}
	}
	buf = append(buf, '\n', '\n')
	put()
	if cap(buf) > 4<<10 {
		buf = nil
	}
	return buf, err
}

// appendEvent appends the server-sent event of v, a message or
// confirmation of a subscription: "data: <kind>,<channel>[,...]". Anything
// but an array is no event. A line break in a string would end the event
// early, or with a blank line start another one (a message on a channel
// two keys share forging one of a channel only the other may publish to):
// it continues on a data line of its own, as SSE allows (see appendData).
func appendEvent(ev []byte, v resp.Value) []byte {
	if v.Kind != resp.KindArray {
		return ev
	}
	b := bytes.NewBuffer(ev)
	_, _ = writeEvent(b, nil, v)
	return b.Bytes()
}

// appendData appends s to ev with each of its line breaks (CRLF, LF or CR)
// written as "\ndata: ": SSE ends a line at CRLF, LF or CR alike.
func appendData(ev, s []byte) []byte {
	for {
		i := bytes.IndexAny(s, "\r\n")
		if i < 0 {
			return append(ev, s...)
		}
		ev = append(append(ev, s[:i]...), "\ndata: "...)
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
}
