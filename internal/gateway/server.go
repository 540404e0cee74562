package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/logging"
)

// Routes, as metric labels.
const (
	RouteCommand    = "command"    // POST / with a JSON array
	RoutePath       = "path"       // GET|POST /cmd/arg...
	RoutePipeline   = "pipeline"   // POST /pipeline
	RouteMultiExec  = "multi-exec" // POST /multi-exec
	RouteSubscribe  = "subscribe"  // POST /subscribe/..., /psubscribe/...
	RouteNotAllowed = "other"
)

// DefaultMaxRequestBytes is the default bound of a request body.
const DefaultMaxRequestBytes = 10 << 20

// Config configures a Server.
type Config struct {
	// MaxRequestBytes bounds a request's body; larger ones get 413.
	MaxRequestBytes int64
	// Policy refuses and bounds commands.
	Policy Policy
	// MaxSubscriptions bounds concurrent /subscribe streams.
	MaxSubscriptions int
	Log              logging.Logger
	Metrics          *Metrics
}

// A Server serves the Upstash REST protocol.
type Server struct {
	redis   *Redis
	scripts *Scripts
	cfg     Config
	subs    chan struct{}
	// closing is closed by CloseStreams: subscriptions end.
	closing   chan struct{}
	closeOnce sync.Once

	syncPrefix string
	syncN      atomic.Uint64
	bufs       sync.Pool
}

// NewServer returns a Server running commands on r.
func NewServer(r *Redis, cfg Config) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = 1000
	}
	if cfg.Log == nil {
		cfg.Log = logging.NewNopLogger()
	}
	p := make([]byte, 8)
	_, _ = rand.Read(p)
	return &Server{
		redis: r, scripts: NewScripts(10000), cfg: cfg,
		subs:       make(chan struct{}, cfg.MaxSubscriptions),
		closing:    make(chan struct{}),
		syncPrefix: hex.EncodeToString(p) + "-",
		bufs:       sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }},
	}
}

// CloseStreams ends every subscription stream, for a graceful shutdown
// (http.Server.Shutdown waits for running requests, and streams never end
// on their own).
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

// ServeHTTP dispatches by path by hand rather than with http.ServeMux:
// ServeMux cleans paths and redirects /set/k//v or /get/a%2F.. , which would
// change a command's arguments, and answers 405 with a text body where the
// protocol wants JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	route, status := s.serve(w, r)
	s.cfg.Metrics.observe(route, status, time.Since(start))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) (string, int) {
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodHead:
	default:
		return RouteNotAllowed, s.fail(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed: use GET, POST, PUT or HEAD")
	}
	p := r.URL.EscapedPath()
	route := RoutePath
	switch {
	case p == "/" && r.Method != http.MethodGet && r.Method != http.MethodHead:
		route = RouteCommand
	case p == "/pipeline" && r.Method == http.MethodPost:
		route = RoutePipeline
	case p == "/multi-exec" && r.Method == http.MethodPost:
		route = RouteMultiExec
	case strings.HasPrefix(p, "/subscribe/") || strings.HasPrefix(p, "/psubscribe/"):
		route = RouteSubscribe
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		return route, s.tooLarge(w)
	}
	id, ok := s.identityOf(r)
	if !ok {
		return route, s.unauthorized(w)
	}
	if route == RouteSubscribe {
		return route, s.subscribe(w, r, id, strings.HasPrefix(p, "/psubscribe/"))
	}
	body, err := s.readBody(w, r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return route, s.tooLarge(w)
		}
		return route, s.fail(w, http.StatusBadRequest, "cannot read the request body")
	}
	defer s.putBuf(body)

	var cmds [][][]byte
	switch route {
	case RouteCommand:
		c, err := jsonCommand(body)
		if err != nil {
			return route, s.fail(w, http.StatusBadRequest, err.Error())
		}
		cmds = [][][]byte{c}
	case RoutePath:
		c, err := pathCommand(p, r.URL.RawQuery, body)
		if err != nil {
			return route, s.fail(w, http.StatusBadRequest, err.Error())
		}
		cmds = [][][]byte{c}
	default:
		if cmds, err = jsonCommands(body); err != nil {
			return route, s.fail(w, http.StatusBadRequest, err.Error())
		}
	}
	stateful := false
	var loadSHA []string
	for i, c := range cmds {
		st, err := s.cfg.Policy.check(c)
		if err == nil && route == RouteMultiExec {
			err = inTransaction(c)
		}
		if err != nil {
			return route, s.fail(w, http.StatusBadRequest, err.Error())
		}
		stateful = stateful || st
		if sha := s.scripts.rewrite(c); sha != "" {
			if loadSHA == nil {
				loadSHA = make([]string, len(cmds))
			}
			loadSHA[i] = sha
		}
	}
	if route == RouteMultiExec {
		tx := make([][][]byte, 0, len(cmds)+2)
		tx = append(tx, [][]byte{[]byte("MULTI")})
		tx = append(tx, cmds...)
		tx = append(tx, [][]byte{[]byte("EXEC")})
		cmds = tx
	}

	replies, err := s.redis.Do(r.Context(), id, cmds, stateful)
	if err != nil {
		return route, s.redisFailed(w, err)
	}
	b64 := strings.EqualFold(r.Header.Get("Upstash-Encoding"), "base64")
	out := s.getBuf()
	defer s.putBuf(out)
	status := http.StatusOK
	switch route {
	case RouteCommand, RoutePath:
		v := replies[0]
		if loadSHA != nil && v.Kind == KindBulk {
			v.Str = []byte(loadSHA[0])
		}
		if v.IsError() {
			status = http.StatusBadRequest
		}
		out = appendReply(out, v, b64)
	case RoutePipeline:
		out = append(out, '[')
		for i, v := range replies {
			if i > 0 {
				out = append(out, ',')
			}
			if loadSHA != nil && loadSHA[i] != "" && v.Kind == KindBulk {
				v.Str = []byte(loadSHA[i])
			}
			out = appendReply(out, v, b64)
		}
		out = append(out, ']')
	case RouteMultiExec:
		exec := replies[len(replies)-1]
		switch exec.Kind {
		case KindArray:
			out = append(out, '[')
			for i, v := range exec.Elems {
				if i > 0 {
					out = append(out, ',')
				}
				if loadSHA != nil && loadSHA[i] != "" && v.Kind == KindBulk {
					v.Str = []byte(loadSHA[i])
				}
				out = appendReply(out, v, b64)
			}
			out = append(out, ']')
		case KindError:
			status = http.StatusBadRequest
			out = appendError(out, string(exec.Str))
		default:
			status = http.StatusBadRequest
			out = appendError(out, "EXECABORT Transaction discarded")
		}
	}
	s.write(w, status, out)
	return route, status
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	buf := s.getBuf()
	if r.Body == nil || r.Body == http.NoBody {
		return buf, nil
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	b := bytes.NewBuffer(buf)
	if r.ContentLength > 0 {
		b.Grow(int(r.ContentLength) + 1)
	}
	_, err := b.ReadFrom(body)
	return b.Bytes(), err
}

func (s *Server) getBuf() []byte { return (*s.bufs.Get().(*[]byte))[:0] }

func (s *Server) putBuf(b []byte) {
	if cap(b) > 1<<20 {
		return
	}
	s.bufs.Put(&b)
}

// contentTypeJSON is shared by every response's header, never modified.
var contentTypeJSON = []string{"application/json"}

func (s *Server) write(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Upstash-Sync-Token"] = []string{s.syncPrefix + strconv.FormatUint(s.syncN.Add(1), 10)}
	w.WriteHeader(status)
	_, _ = w.Write(body) //nolint:gosec // G705: the body is JSON served as application/json, never HTML.
}

func (s *Server) fail(w http.ResponseWriter, status int, msg string) int {
	s.write(w, status, appendError(nil, msg))
	return status
}

func (s *Server) unauthorized(w http.ResponseWriter) int {
	return s.fail(w, http.StatusUnauthorized, "Unauthorized: missing, malformed or refused token")
}

func (s *Server) tooLarge(w http.ResponseWriter) int {
	return s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.cfg.MaxRequestBytes))
}

// redisFailed answers an error of Redis.Do. Its message never carries a
// command argument or key.
func (s *Server) redisFailed(w http.ResponseWriter, err error) int {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return s.unauthorized(w)
	case errors.Is(err, ErrReplyTooLarge):
		s.cfg.Metrics.redisError("reply-too-large")
		return s.fail(w, http.StatusBadRequest, "ERR reply too large for the gateway: read less per request")
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		s.cfg.Metrics.redisError("timeout")
		return s.fail(w, http.StatusGatewayTimeout, "Redis did not answer in time")
	case errors.Is(err, ErrPoolTimeout):
		s.cfg.Metrics.redisError("pool-exhausted")
		return s.fail(w, http.StatusServiceUnavailable, "no Redis connection free in time")
	default:
		s.cfg.Metrics.redisError("unavailable")
		s.cfg.Log.Info("Cannot reach Redis", "error", err)
		return s.fail(w, http.StatusServiceUnavailable, "Redis is unavailable")
	}
}
