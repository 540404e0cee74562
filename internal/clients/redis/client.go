package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
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
	// Commands returns Redis's compacted form of the command rules of r,
	// the form ACL LIST shows them in. It is learned once per distinct set of
	// rules, from a user SetUser made or, before any, from a probe user no
	// one can log in as: never by writing to a user that is already right.
	Commands(ctx context.Context, r Rules) (string, error)
}

// Credentials of a Redis user allowed to run ACL commands.
type Credentials struct {
	// Address to dial, host:port.
	Address string
	// Username, "default" when empty.
	Username string
	// Password of the user.
	Password string
	// Restricted credentials come from a tenant (a connectionSecretRef):
	// they may only reach the pool's allowed endpoints.
	Restricted bool
}

// A Pool shares admin connections and ACL snapshots between reconciles: one
// entry per Redis address and admin credentials. Entries unused for a while
// are closed (Evict), and there are never more than a bound: a tenant who
// points many Secrets at many addresses costs a bounded amount of memory and
// no goroutines once they are evicted.
type Pool struct {
	maxAge     time.Duration
	limits     Limits
	endpoints  Endpoints
	maxEntries int
	idle       time.Duration
	now        func() time.Time

	mu     sync.Mutex
	redis  map[string]*server // by address and credentials
	closed bool
}

// A PoolOption configures a Pool.
type PoolOption func(*Pool)

// WithSnapshotMaxAge sets how old an ACL LIST snapshot may be when read.
func WithSnapshotMaxAge(d time.Duration) PoolOption {
	return func(p *Pool) { p.maxAge = d }
}

// WithLimits sets what the pool reads from any Redis at most.
func WithLimits(l Limits) PoolOption {
	return func(p *Pool) { p.limits = l }
}

// WithEndpoints restricts the endpoints credentials marked Restricted may
// reach.
func WithEndpoints(e Endpoints) PoolOption {
	return func(p *Pool) { p.endpoints = e }
}

// WithMaxEntries bounds how many Redis servers (address and credentials) the
// pool keeps connections to; the least recently used goes first.
func WithMaxEntries(n int) PoolOption {
	return func(p *Pool) { p.maxEntries = n }
}

// WithIdleTimeout sets how long an entry may go unused before Evict closes it.
func WithIdleTimeout(d time.Duration) PoolOption {
	return func(p *Pool) { p.idle = d }
}

// Defaults of a Pool.
const (
	DefaultMaxEntries  = 1024
	DefaultIdleTimeout = 10 * time.Minute
)

// NewPool returns an empty Pool.
func NewPool(o ...PoolOption) *Pool {
	p := &Pool{
		maxAge:     DefaultSnapshotMaxAge,
		limits:     DefaultLimits,
		maxEntries: DefaultMaxEntries,
		idle:       DefaultIdleTimeout,
		now:        time.Now,
		redis:      map[string]*server{},
	}
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
// snapshot, through someone else's login. Credentials that fail Validate, or
// a restricted address outside the pool's endpoints, give an ACL whose every
// call fails with that error: nothing is sent anywhere.
func (p *Pool) ACL(c Credentials) ACL {
	if c.Username == "" {
		c.Username = "default"
	}
	if err := c.Validate(); err != nil {
		return refusedACL{err: err}
	}
	var checkIP bool
	if c.Restricted {
		var err error
		if checkIP, err = p.endpoints.check(c.Address); err != nil {
			return refusedACL{err: err}
		}
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%t", c.Address, c.Username, c.Password, c.Restricted)))
	id := hex.EncodeToString(h[:])
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		// A reconcile that outlived the manager must not open (and keep
		// redialling) connections nobody will close.
		return refusedACL{err: goredis.ErrClosed}
	}
	s, ok := p.redis[id]
	if !ok {
		if len(p.redis) >= p.maxEntries {
			p.evictOldest()
		}
		s = newServer(c, p.maxAge, dialer(p.limits, p.endpoints, checkIP))
		p.redis[id] = s
	}
	s.used.Store(p.now().UnixNano())
	return s
}

// evictOldest closes the least recently used entry. p.mu must be held.
func (p *Pool) evictOldest() {
	var oldest string
	var at int64
	for id, s := range p.redis {
		if u := s.used.Load(); oldest == "" || u < at {
			oldest, at = id, u
		}
	}
	if oldest != "" {
		_ = p.redis[oldest].client.Close()
		delete(p.redis, oldest)
	}
}

// Evict closes the entries unused for longer than the idle timeout, with
// their connections and any goroutine redialling an unreachable Redis. It
// returns how many it closed.
func (p *Pool) Evict() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	cutoff := p.now().Add(-p.idle).UnixNano()
	for id, s := range p.redis {
		if s.used.Load() < cutoff {
			_ = s.client.Close()
			delete(p.redis, id)
			n++
		}
	}
	return n
}

// Len returns how many entries the pool holds.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.redis)
}

// Start evicts idle entries every minute until ctx is done, then closes the
// pool. It makes the pool a controller-runtime Runnable.
func (p *Pool) Start(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return p.Close()
		case <-t.C:
			p.Evict()
		}
	}
}

// CheckRestarts makes the next read of every snapshot first ask its Redis,
// with one INFO server, whether it restarted since the snapshot was taken,
// and take a new snapshot if it did. Call it when a Redis may have
// restarted, say its pod became ready: a restarted Redis without an ACL file
// lost the users created at runtime, which the snapshot still lists. It also
// ends every back-off: a Redis that did not answer may answer now.
func (p *Pool) CheckRestarts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.redis {
		s.check.Store(true)
		s.mu.Lock()
		s.until, s.backoff = time.Time{}, 0
		s.mu.Unlock()
	}
}

// Close closes every connection of the pool; its ACLs fail from then on.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for id, s := range p.redis {
		_ = s.client.Close()
		delete(p.redis, id)
	}
	return nil
}

// A refusedACL is the ACL of credentials the pool refused to use.
type refusedACL struct{ err error }

func (r refusedACL) GetUser(context.Context, string) (*User, bool, error) { return nil, false, r.err }
func (r refusedACL) SetUser(context.Context, string, Rules) error         { return r.err }
func (r refusedACL) DeleteUser(context.Context, string) error             { return r.err }
func (r refusedACL) Commands(context.Context, Rules) (string, error)      { return "", r.err }
func (refusedACL) Responsive() bool                                       { return true }
func (refusedACL) Pending() bool                                          { return false }
