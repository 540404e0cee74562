package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// subscribe streams a SUBSCRIBE (or PSUBSCRIBE) as server-sent events, one
// "data: <kind>,<channel>[,...]" event per Redis message, the way
// @upstash/redis reads them. The stream runs on a connection of its own,
// authenticated before anything is subscribed, and ends when the client
// goes away, when Redis closes the connection (ACL DELUSER does), or when
// the token stops verifying (checked every VerifyTTL, so within a second
// of a key's removal).
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, id Identity, pattern bool) int {
	kind, p := "SUBSCRIBE", strings.TrimPrefix(r.URL.EscapedPath(), "/subscribe/")
	if pattern {
		kind, p = "PSUBSCRIBE", strings.TrimPrefix(r.URL.EscapedPath(), "/psubscribe/")
	}
	args := [][]byte{[]byte(kind)}
	for seg := range strings.SplitSeq(p, "/") {
		d, err := url.PathUnescape(seg)
		if err != nil || d == "" {
			return s.fail(w, http.StatusBadRequest, "ERR invalid channel in the path")
		}
		args = append(args, []byte(d))
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		return s.fail(w, http.StatusInternalServerError, "streaming is not supported by this connection")
	}
	select {
	case s.subs <- struct{}{}:
		defer func() { <-s.subs }()
	default:
		return s.fail(w, http.StatusServiceUnavailable, "too many subscriptions on this gateway")
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c, err := dial(ctx, s.redis.pool.addr, s.redis.pool.dialTimeout)
	if err != nil {
		return s.redisFailed(w, ioErr(err))
	}
	defer c.close()
	// Authenticate and wait for the verdict before subscribing.
	_ = c.nc.SetDeadline(time.Now().Add(s.redis.timeout))
	c.wb = appendCommand(c.wb[:0], cmdReset)
	c.wb = appendCommand(c.wb, cmdAuth, []byte(id.User), []byte(id.Key))
	c.openDefault = true
	rr := replyReader{r: c.br, limits: s.redis.limits, budget: s.redis.limits.MaxReplyBytes}
	ok, err = s.redis.authReplies(c, &rr)
	if err != nil {
		return s.redisFailed(w, err)
	}
	if !ok {
		return s.unauthorized(w)
	}
	c.wb = appendCommand(c.wb[:0], args...)
	if _, err := c.nc.Write(c.wb); err != nil {
		return s.redisFailed(w, ioErr(err))
	}
	_ = c.nc.SetDeadline(time.Time{})

	s.cfg.Metrics.subscriptions(1)
	defer s.cfg.Metrics.subscriptions(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	fl.Flush()

	// Close the connection when the client leaves or the token stops
	// verifying; the read loop then ends.
	go func() {
		t := time.NewTicker(VerifyTTL)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				c.close()
				return
			case <-s.closing:
				c.close()
				return
			case <-t.C:
				if err := s.redis.Verify(ctx, id); errors.Is(err, ErrUnauthorized) {
					c.close()
					return
				}
			}
		}
	}()

	var ev []byte
	for {
		rr.budget = s.redis.limits.MaxReplyBytes
		v, err := rr.read(0)
		if err != nil {
			return http.StatusOK
		}
		if v.Kind != KindArray {
			continue
		}
		ev = append(ev[:0], "data: "...)
		for i, e := range v.Elems {
			if i > 0 {
				ev = append(ev, ',')
			}
			switch e.Kind {
			case KindInt:
				ev = strconv.AppendInt(ev, e.Int, 10)
			default:
				// A newline would end the event early: continue it
				// on a data line of its own, as SSE allows.
				ev = append(ev, bytes.ReplaceAll(e.Str, []byte("\n"), []byte("\ndata: "))...)
			}
		}
		ev = append(ev, '\n', '\n')
		if _, err := w.Write(ev); err != nil {
			return http.StatusOK
		}
		fl.Flush()
	}
}
