package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The snapshot comes from Redis's replication protocol rather than BGSAVE:
// the job asks for a full resynchronisation as an RDB-only replica would
// (REPLCONF rdb-only 1, capa eof, SYNC) and the master forks and streams the
// RDB straight to the socket (repl-diskless-sync, Redis 7's default). The pod's
// volume is not touched (no second RDB file needing free space, no volume
// shared between pods, which ReadWriteOnce forbids), the snapshot is as
// consistent as BGSAVE's (one fork), and the job needs nothing but the
// network. When Redis is configured for disk-based sync it sends the file it
// wrote instead; both forms are read.

// A Snapshot is the RDB stream of one full synchronisation.
type Snapshot struct {
	// RedisVersion is what the server's INFO says.
	RedisVersion string

	conn net.Conn
	src  *bufio.Reader
	// size is the RDB's length when the server announced it, -1 when it
	// ends with mark instead (diskless sync).
	size int64
	mark []byte
	idle time.Duration
}

// RedisOptions say how to reach Redis.
type RedisOptions struct {
	Addr     string
	User     string
	Password string
	// Idle bounds the wait for any byte from Redis, including the fork
	// before the first one.
	Idle time.Duration
}

// ErrRedis wraps failures to get a snapshot out of Redis.
var ErrRedis = errors.New("redis")

// OpenSnapshot connects to Redis and starts a full synchronisation. The
// caller reads the RDB with ReadRDB(s.Reader(), ...) and then calls Finish.
func OpenSnapshot(ctx context.Context, o RedisOptions) (*Snapshot, error) {
	if o.Idle == 0 {
		o.Idle = 2 * time.Minute
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot connect to %s: %w", ErrRedis, o.Addr, err)
	}
	s := &Snapshot{conn: conn, idle: o.Idle, src: bufio.NewReaderSize(&idleReader{conn: conn, idle: o.Idle}, 1<<20), size: -1}
	if err := s.start(o); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrRedis, err)
	}
	return s, nil
}

func (s *Snapshot) start(o RedisOptions) error {
	if o.Password != "" {
		if _, err := s.command("AUTH", o.User, o.Password); err != nil {
			return fmt.Errorf("cannot authenticate as %q: %w", o.User, err)
		}
	}
	info, err := s.command("INFO", "server")
	if err != nil {
		return fmt.Errorf("cannot read INFO: %w", err)
	}
	for l := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			s.RedisVersion = v
		}
	}
	// rdb-only: the master forgets this replica once the RDB is sent (no
	// replication buffer kept for it); capa eof: it may stream the RDB
	// without writing it to disk first.
	if _, err := s.command("REPLCONF", "rdb-only", "1"); err != nil {
		return fmt.Errorf("cannot announce an RDB-only replica: %w", err)
	}
	if _, err := s.command("REPLCONF", "capa", "eof"); err != nil {
		return fmt.Errorf("cannot announce the eof capability: %w", err)
	}
	if _, err := s.conn.Write(resp("SYNC")); err != nil {
		return fmt.Errorf("cannot send SYNC: %w", err)
	}
	// The master sends newlines while it prepares the snapshot, then $<size>
	// or $EOF:<40-byte mark>.
	for {
		line, err := s.line()
		if err != nil {
			return fmt.Errorf("cannot read the reply to SYNC: %w", err)
		}
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "-"):
			return fmt.Errorf("SYNC refused: %s", line[1:])
		case strings.HasPrefix(line, "$EOF:"):
			s.mark = []byte(line[5:])
			if len(s.mark) != 40 {
				return fmt.Errorf("SYNC reply has an end mark of %d bytes, not 40", len(s.mark))
			}
			return nil
		case strings.HasPrefix(line, "$"):
			n, err := strconv.ParseInt(line[1:], 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("SYNC reply %q is not a size", printable([]byte(line)))
			}
			s.size = n
			return nil
		default:
			return fmt.Errorf("unexpected reply to SYNC: %q", printable([]byte(line)))
		}
	}
}

// Reader is where the RDB is read from.
func (s *Snapshot) Reader() *bufio.Reader { return s.src }

// Finish checks that the RDB read ended where Redis said it would (size
// bytes, or followed by the end mark) and closes the connection.
func (s *Snapshot) Finish(read int64) error {
	defer s.Close() //nolint:errcheck // Nothing more to read.
	if s.size >= 0 {
		if read != s.size {
			return fmt.Errorf("%w: Redis announced an RDB of %d bytes and sent one of %d", ErrRedis, s.size, read)
		}
		return nil
	}
	got := make([]byte, len(s.mark))
	if _, err := io.ReadFull(s.src, got); err != nil {
		return fmt.Errorf("%w: cannot read the end mark after the RDB: %w", ErrRedis, err)
	}
	if !bytes.Equal(got, s.mark) {
		return fmt.Errorf("%w: the RDB is not followed by the end mark Redis announced", ErrRedis)
	}
	return nil
}

// Close closes the connection.
func (s *Snapshot) Close() error { return s.conn.Close() }

// command sends one command and returns its simple or bulk string reply.
func (s *Snapshot) command(args ...string) (string, error) {
	if _, err := s.conn.Write(resp(args...)); err != nil {
		return "", err
	}
	line, err := s.line()
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 || n > 1<<20 {
			return "", fmt.Errorf("unexpected reply %q", printable([]byte(line)))
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(s.src, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", printable([]byte(line)))
}

// maxLine bounds a reply line.
const maxLine = 4096

// line reads one reply line without its CRLF (or LF).
func (s *Snapshot) line() (string, error) {
	var b []byte
	for {
		c, err := s.src.ReadByte()
		if err != nil {
			return "", unexpected(err)
		}
		if c == '\n' {
			return strings.TrimSuffix(string(b), "\r"), nil
		}
		if len(b) >= maxLine {
			return "", fmt.Errorf("reply line longer than %d bytes", maxLine)
		}
		b = append(b, c)
	}
}

func resp(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// An idleReader fails a read that waits longer than idle for its first byte.
type idleReader struct {
	conn net.Conn
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	if err := r.conn.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
		return 0, err
	}
	return r.conn.Read(p)
}
