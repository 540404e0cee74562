package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// ErrBusy is the error for a Redis another reconcile is waiting on: the
// caller gives its worker back instead of queueing behind a slow Redis.
var ErrBusy = errors.New("cannot use Redis now: another request to it is still waiting for an answer; retrying later")

// ErrUnresponsive is the error for a Redis that did not answer recently: it
// is not asked again until its back-off ends, so a Redis that never answers
// costs one timeout per back-off, not one per reconcile.
var ErrUnresponsive = errors.New("cannot use Redis now: it did not answer in time recently; retrying later")

// Back-off of a Redis that did not answer: doubled at each failure.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// A server is one Redis as seen with one set of credentials: its admin
// client, its ACL snapshot, and what its command rules compact to.
type server struct {
	maxAge time.Duration
	client *goredis.Client
	used   atomic.Int64 // when the pool last handed it out, Unix nanoseconds

	// seen is the run_id of Redis that its latest connection or check
	// reported; check asks the next read to ask Redis for it first.
	seen  atomic.Pointer[string]
	check atomic.Bool

	// lock is held while the snapshot refreshes, and while a write is
	// applied to it, so a write made meanwhile is applied after the
	// refresh, never lost under it. It is a channel so that waiting for it
	// is bounded: by the caller's context, and by ReadTimeout (then ErrBusy).
	lock chan struct{}

	// mu guards what follows; it is never held during network I/O.
	mu       sync.Mutex
	taken    time.Time
	runID    string // of the Redis run the snapshot was taken from
	users    map[string]*User
	commands map[string]string
	until    time.Time     // no request before, after a timeout
	backoff  time.Duration // the next back-off

	// probes learns each set of command rules once, however many ask.
	probes singleflight.Group

	// responsive is set once Redis answered (or failed fast), and cleared
	// when it did not answer in time.
	responsive atomic.Bool
}

// Responsive reports whether this Redis answered its latest request in time.
// One that never answered yet, or timed out, may hold a caller for up to the
// timeouts: callers bound how many of theirs wait on such a Redis.
func (s *server) Responsive() bool { return s.responsive.Load() }

// Pending reports whether this Redis has neither answered nor failed to
// yet: a first request to it may be under way.
func (s *server) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.responsive.Load() && s.backoff == 0
}

func newServer(c Credentials, maxAge time.Duration, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *server {
	s := &server{
		maxAge:   maxAge,
		lock:     make(chan struct{}, 1),
		users:    map[string]*User{},
		commands: map[string]string{},
	}
	s.client = goredis.NewClient(&goredis.Options{
		Addr:                  c.Address,
		Username:              c.Username,
		Password:              c.Password,
		Protocol:              2,
		DisableIdentity:       true,
		Dialer:                dial,
		DialTimeout:           DialTimeout,
		ReadTimeout:           ReadTimeout,
		WriteTimeout:          WriteTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		PoolSize:              4,
		// Connections are made once and kept, and a restarted Redis
		// drops them all: the first command after a restart reconnects,
		// and this is where the pool learns that Redis is a new run.
		OnConnect: func(ctx context.Context, cn *goredis.Conn) error {
			if id, err := runID(ctx, cn); err == nil {
				s.seen.Store(&id)
			}
			// A Redis that refuses INFO is still administered; its
			// restarts are noticed within the snapshot's max age.
			return nil
		},
	})
	return s
}

// lockWait is how long a request waits for another one to a Redis that has
// not answered in time yet: one that does not answer must not hold the
// caller's worker too. A request to a Redis that answers waits up to
// ReadTimeout: a thousand keys read at once (a provider that starts) wait
// for one ACL LIST of a thousand users, which a loaded machine may take
// longer than lockWait to answer.
const lockWait = 250 * time.Millisecond

// acquire takes s.lock, waiting at most until ctx is done or lockWait (or
// ReadTimeout) passed: the holder is waiting on Redis, and so would the
// caller.
func (s *server) acquire(ctx context.Context) error {
	select {
	case s.lock <- struct{}{}:
		return nil
	default:
	}
	wait := lockWait
	if s.responsive.Load() {
		wait = ReadTimeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.lock <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return errors.Wrap(ctx.Err(), "cannot wait for Redis")
	}
}

func (s *server) release() { <-s.lock }

// available returns ErrUnresponsive while the back-off after a timeout lasts.
func (s *server) available() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.until) {
		return ErrUnresponsive
	}
	return nil
}

// done records how a request to Redis went, and returns its error fit for a
// tenant to read (see peerError). A Redis that did not answer in time is
// backed off from.
func (s *server) done(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ne net.Error
	switch {
	case err == nil, !errors.As(err, &ne), !ne.Timeout():
		// Answered, even if with an error, or failed fast.
		s.until, s.backoff = time.Time{}, 0
		s.responsive.Store(true)
	default:
		s.responsive.Store(false)
		s.backoff = min(max(2*s.backoff, minBackoff), maxBackoff)
		s.until = time.Now().Add(s.backoff)
	}
	return peerError(err)
}

func (s *server) GetUser(ctx context.Context, name string) (*User, bool, error) {
	if err := s.available(); err != nil {
		return nil, false, err
	}
	if u, ok, fresh := s.cached(name); fresh {
		return u, ok, nil
	}
	if err := s.acquire(ctx); err != nil {
		return nil, false, err
	}
	defer s.release()
	if !s.current(ctx) {
		if err := s.refresh(ctx); err != nil {
			return nil, false, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	return u, ok, nil
}

// cached reads the user from the snapshot without waiting for s.lock, when
// nothing asks for a new snapshot: it is younger than its max age, no
// restart check is pending, and it was taken from the run of Redis seen
// last. Many reconciles read at once (a provider that starts); only a
// refresh makes them wait.
func (s *server) cached(name string) (*User, bool, bool) {
	if s.check.Load() {
		return nil, false, false
	}
	seen := s.seen.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken.IsZero() || time.Since(s.taken) > s.maxAge || (seen != nil && *seen != s.runID) {
		return nil, false, false
	}
	u, ok := s.users[name]
	return u, ok, true
}

// current reports whether the snapshot may be read: it is younger than its
// max age and was taken from the run of Redis that serves now, as far as the
// pool knows. s.lock must be held.
func (s *server) current(ctx context.Context) bool {
	s.mu.Lock()
	taken, snapshotRun := s.taken, s.runID
	s.mu.Unlock()
	if time.Since(taken) > s.maxAge {
		return false
	}
	if s.check.Load() {
		id, err := runID(ctx, s.client)
		if err != nil {
			// Whether Redis restarted is unknown: read it again.
			return false
		}
		// Cleared only once the run is known: until then, readers that do
		// not wait for s.lock (see cached) must not read the snapshot.
		s.seen.Store(&id)
		s.check.Store(false)
	}
	seen := s.seen.Load()
	return seen == nil || *seen == snapshotRun
}

// refresh replaces the snapshot with ACL LIST, and records which run of Redis
// it was taken from. s.lock must be held. A failed refresh leaves no snapshot
// to read, so the next read tries again.
func (s *server) refresh(ctx context.Context) error {
	s.mu.Lock()
	s.taken = time.Time{}
	s.mu.Unlock()
	var info *goredis.StringCmd
	var list *goredis.Cmd
	// One connection answers both, so the run_id is that of the Redis the
	// users were listed from. The pipeline's error is the first of either
	// command's: a Redis that refuses INFO still has its users listed.
	_, perr := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		info = p.Info(ctx, "server")
		list = p.Do(ctx, "ACL", "LIST")
		return nil
	})
	err := list.Err()
	if err == nil && list.Val() == nil {
		// A pipeline that failed before reading this reply (a timeout)
		// leaves the command without an error of its own.
		err = perr
	}
	var lines []string
	if err == nil {
		lines, err = list.StringSlice()
	}
	if err := s.done(err); err != nil {
		return errors.Wrap(err, "cannot list Redis ACL users")
	}
	users := make(map[string]*User, len(lines))
	for _, l := range lines {
		if u, ok := ParseUser(l); ok {
			users[u.Name] = u
		}
	}
	id, ok := runIDOf(info)
	if ok {
		s.seen.Store(&id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users, s.runID, s.taken = users, id, time.Now()
	return nil
}

func (s *server) SetUser(ctx context.Context, name string, r Rules) error {
	if err := s.do(ctx, r.Args(name)...); err != nil {
		return errors.Wrapf(err, "cannot set Redis ACL user %q", name)
	}
	cmds, known := s.learned(r)
	if !known {
		// Learn once per distinct set of command rules how Redis compacts
		// them, so later snapshots can be compared exactly. ACL GETUSER is
		// slow with category rules, which is why this is not done per poll.
		v, err := s.client.Do(ctx, "ACL", "GETUSER", name).Result()
		if err := s.done(err); err != nil {
			return errors.Wrapf(err, "cannot get Redis ACL user %q", name)
		}
		cmds, known = commandsOf(v)
	}
	s.applied(ctx, func() {
		if known {
			s.commands[r.CommandRules()] = cmds
		}
		s.users[name] = r.User(name, cmds)
	})
	return nil
}

func (s *server) DeleteUser(ctx context.Context, name string) error {
	if err := s.do(ctx, "ACL", "DELUSER", name); err != nil {
		return errors.Wrapf(err, "cannot delete Redis ACL user %q", name)
	}
	s.applied(ctx, func() { delete(s.users, name) })
	return nil
}

// do runs one command, unless Redis is backed off from.
func (s *server) do(ctx context.Context, args ...any) error {
	if err := s.available(); err != nil {
		return err
	}
	return s.done(s.client.Do(ctx, args...).Err())
}

// applied applies to the snapshot, with s.mu held, a change just made to
// Redis. When the snapshot is refreshing for too long to wait, the next read
// takes a new one instead, which sees the change.
func (s *server) applied(ctx context.Context, apply func()) {
	if err := s.acquire(ctx); err != nil {
		s.expire()
		return
	}
	defer s.release()
	s.mu.Lock()
	defer s.mu.Unlock()
	apply()
}

// expire makes the next read take a new snapshot, for a write that could not
// be applied to this one.
func (s *server) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taken = time.Time{}
}

// learned returns the compacted form of r's command rules, if known.
func (s *server) learned(r Rules) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commands[r.CommandRules()]
	return c, ok
}

// ProbePrefix starts the name of the users Commands makes to learn how Redis
// compacts command rules: no ApiKey may use such a name.
const ProbePrefix = "redishttp-probe-"

func (s *server) Commands(ctx context.Context, r Rules) (string, error) {
	if c, ok := s.learned(r); ok {
		return c, nil
	}
	// Reconciles of many keys with the same rules ask at once (a provider
	// that starts): one probe answers them all.
	c, err, _ := s.probes.Do(r.CommandRules(), func() (any, error) {
		if c, ok := s.learned(r); ok {
			return c, nil
		}
		return s.probe(ctx, r)
	})
	if err != nil {
		return "", err
	}
	return c.(string), nil //nolint:forcetypeassert // probe returns a string.
}

// probe learns the compacted form of r's command rules from a probe user.
func (s *server) probe(ctx context.Context, r Rules) (string, error) {
	if err := s.available(); err != nil {
		return "", err
	}
	// A user that is off and has no password cannot log in; it lives for
	// one round trip. Its name is random, so concurrent probes never meet.
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", errors.Wrap(err, "cannot name a probe user")
	}
	name := ProbePrefix + hex.EncodeToString(b)
	args := append([]any{"ACL", "SETUSER", name, "reset", "-@all"}, toAny(r.Commands)...)
	var set, get, del *goredis.Cmd
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		set = p.Do(ctx, args...)
		get = p.Do(ctx, "ACL", "GETUSER", name)
		del = p.Do(ctx, "ACL", "DELUSER", name)
		return nil
	})
	for _, c := range []*goredis.Cmd{set, get, del} {
		if c.Err() != nil {
			err = c.Err()
			break
		}
	}
	if err := s.done(err); err != nil {
		return "", errors.Wrap(err, "cannot learn how Redis writes ACL command rules")
	}
	cmds, ok := commandsOf(get.Val())
	if !ok {
		return "", errors.New("cannot learn how Redis writes ACL command rules: ACL GETUSER has no commands")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[r.CommandRules()] = cmds
	return cmds, nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i := range s {
		out[i] = s[i]
	}
	return out
}

// An infoer runs INFO: a client, or one of its connections.
type infoer interface {
	Info(ctx context.Context, section ...string) *goredis.StringCmd
}

// runID returns the run_id of the Redis c is connected to: a random value
// each Redis process picks when it starts.
func runID(ctx context.Context, c infoer) (string, error) {
	cmd := c.Info(ctx, "server")
	if err := cmd.Err(); err != nil {
		return "", errors.Wrap(err, "cannot get Redis server info")
	}
	id, ok := runIDOf(cmd)
	if !ok {
		return "", errors.New("cannot find run_id in Redis server info")
	}
	return id, nil
}

// runIDOf returns the run_id of an INFO server reply, if it has one.
func runIDOf(cmd *goredis.StringCmd) (string, bool) {
	if cmd.Err() != nil {
		return "", false
	}
	for l := range strings.Lines(cmd.Val()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "run_id:"); ok && v != "" {
			return v, true
		}
	}
	return "", false
}

// commandsOf returns the "commands" field of an ACL GETUSER reply, which is
// a map in RESP3 and a flat list in RESP2.
func commandsOf(v any) (string, bool) {
	switch r := v.(type) {
	case map[any]any:
		c, ok := r["commands"].(string)
		return NormalizeCommands(c), ok
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			if k, _ := r[i].(string); k == "commands" {
				c, ok := r[i+1].(string)
				return NormalizeCommands(c), ok
			}
		}
	}
	return "", false
}
