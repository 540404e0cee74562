package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// DefaultSnapshotMaxAge is how old the ACL LIST snapshot of a Redis may be
// when a user is read. Changes made through this package are visible at once,
// and so is a restart that lost runtime users once the pool sees it (see
// Pool.CheckRestarts); other changes behind its back (a manual ACL SETUSER)
// are noticed within this time.
const DefaultSnapshotMaxAge = 10 * time.Second

// An ACL administers the users of one Redis.
type ACL interface {
	// GetUser returns the user called name, and whether it exists.
	GetUser(ctx context.Context, name string) (*User, bool, error)
	// SetUser makes user name exactly what r says, creating it if needed.
	SetUser(ctx context.Context, name string, r Rules) error
	// DeleteUser deletes user name. Deleting a missing user is not an error.
	DeleteUser(ctx context.Context, name string) error
	// Commands returns Redis's compacted form of the command rules of r, once
	// SetUser has applied them on this Redis, and whether it is known.
	Commands(r Rules) (string, bool)
}

// Credentials of a Redis user allowed to run ACL commands.
type Credentials struct {
	// Address to dial, host:port.
	Address string
	// Username, "default" when empty.
	Username string
	// Password of the user.
	Password string
}

// A Pool shares admin connections and ACL snapshots between reconciles: one
// per Redis address and admin credentials, for the life of the process.
type Pool struct {
	maxAge time.Duration

	mu    sync.Mutex
	redis map[string]*server // by address and credentials
}

// A PoolOption configures a Pool.
type PoolOption func(*Pool)

// WithSnapshotMaxAge sets how old an ACL LIST snapshot may be when read.
func WithSnapshotMaxAge(d time.Duration) PoolOption {
	return func(p *Pool) { p.maxAge = d }
}

// NewPool returns an empty Pool.
func NewPool(o ...PoolOption) *Pool {
	p := &Pool{maxAge: DefaultSnapshotMaxAge, redis: map[string]*server{}}
	for _, fn := range o {
		fn(p)
	}
	return p
}

// ACL returns the administrator of the Redis at c.Address, authenticated
// with c. It does not dial: connections are made on first use. Connections,
// snapshots and learned command forms are shared by callers with the same
// address and credentials only: a caller with other credentials (another
// tenant's Secret naming the same address) never runs a command, nor reads a
// snapshot, through someone else's login.
func (p *Pool) ACL(c Credentials) ACL {
	if c.Username == "" {
		c.Username = "default"
	}
	h := sha256.Sum256([]byte(c.Address + "\x00" + c.Username + "\x00" + c.Password))
	id := hex.EncodeToString(h[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.redis[id]
	if !ok {
		s = &server{
			maxAge:   p.maxAge,
			users:    map[string]*User{},
			commands: map[string]string{},
		}
		s.client = goredis.NewClient(&goredis.Options{
			Addr:            c.Address,
			Username:        c.Username,
			Password:        c.Password,
			Protocol:        2,
			DisableIdentity: true,
			DialTimeout:     5 * time.Second,
			ReadTimeout:     5 * time.Second,
			WriteTimeout:    5 * time.Second,
			MaxRetries:      1,
			PoolSize:        8,
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
		p.redis[id] = s
	}
	return s
}

// CheckRestarts makes the next read of every snapshot first ask its Redis,
// with one INFO server, whether it restarted since the snapshot was taken,
// and take a new snapshot if it did. Call it when a Redis may have
// restarted, say its pod became ready: a restarted Redis without an ACL file
// lost the users created at runtime, which the snapshot still lists.
func (p *Pool) CheckRestarts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.redis {
		s.check.Store(true)
	}
}

// Close closes every connection of the pool.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.redis {
		_ = s.client.Close()
		delete(p.redis, id)
	}
	return nil
}

// A server is one Redis as seen with one set of credentials: its admin
// client, its ACL snapshot, and what its command rules compact to.
type server struct {
	maxAge time.Duration
	client *goredis.Client

	// seen is the run_id of Redis that its latest connection or check
	// reported; check asks the next read to ask Redis for it first.
	seen  atomic.Pointer[string]
	check atomic.Bool

	// mu guards the snapshot. It is held while the snapshot refreshes, so a
	// write made meanwhile is applied after the refresh, never lost under it.
	mu       sync.Mutex
	taken    time.Time
	runID    string // of the Redis run the snapshot was taken from
	users    map[string]*User
	commands map[string]string
}

func (s *server) GetUser(ctx context.Context, name string) (*User, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(ctx) {
		if err := s.refresh(ctx); err != nil {
			return nil, false, err
		}
	}
	u, ok := s.users[name]
	return u, ok, nil
}

// current reports whether the snapshot may be read: it is younger than its
// max age and was taken from the run of Redis that serves now, as far as the
// pool knows. s.mu must be held.
func (s *server) current(ctx context.Context) bool {
	if time.Since(s.taken) > s.maxAge {
		return false
	}
	if s.check.Swap(false) {
		id, err := runID(ctx, s.client)
		if err != nil {
			// Whether Redis restarted is unknown: read it again.
			return false
		}
		s.seen.Store(&id)
	}
	seen := s.seen.Load()
	return seen == nil || *seen == s.runID
}

// refresh replaces the snapshot with ACL LIST, and records which run of Redis
// it was taken from. s.mu must be held. A failed refresh leaves no snapshot
// to read, so the next read tries again.
func (s *server) refresh(ctx context.Context) error {
	s.taken = time.Time{}
	var info *goredis.StringCmd
	var list *goredis.Cmd
	// One connection answers both, so the run_id is that of the Redis the
	// users were listed from. The pipeline's error is the first of either
	// command's: a Redis that refuses INFO still has its users listed.
	_, _ = s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		info = p.Info(ctx, "server")
		list = p.Do(ctx, "ACL", "LIST")
		return nil
	})
	lines, err := list.StringSlice()
	if err != nil {
		return errors.Wrap(err, "cannot list Redis ACL users")
	}
	users := make(map[string]*User, len(lines))
	for _, l := range lines {
		if u, ok := ParseUser(l); ok {
			users[u.Name] = u
		}
	}
	s.users = users
	s.runID = ""
	if id, ok := runIDOf(info); ok {
		s.runID = id
		s.seen.Store(&id)
	}
	s.taken = time.Now()
	return nil
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

func (s *server) SetUser(ctx context.Context, name string, r Rules) error {
	if err := s.client.Do(ctx, r.Args(name)...).Err(); err != nil {
		return errors.Wrapf(err, "cannot set Redis ACL user %q", name)
	}
	cmds, known := s.Commands(r)
	if !known {
		// Learn once per distinct set of command rules how Redis compacts
		// them, so later snapshots can be compared exactly. ACL GETUSER is
		// slow with category rules, which is why this is not done per poll.
		v, err := s.client.Do(ctx, "ACL", "GETUSER", name).Result()
		if err != nil {
			return errors.Wrapf(err, "cannot get Redis ACL user %q", name)
		}
		cmds, known = commandsOf(v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if known {
		s.commands[r.CommandRules()] = cmds
	}
	s.users[name] = r.User(name, cmds)
	return nil
}

func (s *server) DeleteUser(ctx context.Context, name string) error {
	if err := s.client.Do(ctx, "ACL", "DELUSER", name).Err(); err != nil {
		return errors.Wrapf(err, "cannot delete Redis ACL user %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, name)
	return nil
}

func (s *server) Commands(r Rules) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.commands[r.CommandRules()]
	return c, ok
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
