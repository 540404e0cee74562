package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A Redis is a redis-server process started for one test.
type Redis struct {
	// Addr is the loopback host:port the server listens on.
	Addr string
	// Port is the port of Addr.
	Port int
	// Dir is the server's working directory (dir in redis.conf).
	Dir string

	cmd  *exec.Cmd
	args []string
	log  string
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot find a free port: %v", err)
	}
	defer l.Close() //nolint:errcheck // Only used to pick a port.
	return l.Addr().(*net.TCPAddr).Port
}

// StartRedis starts redis-server with the given extra arguments (for example a
// config file path followed by --option value pairs) on a free loopback port,
// waits until it accepts connections, and stops it when the test ends. Arguments
// given here come after the config file, so they override it, as on a command
// line.
func StartRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	return StartRedisIn(t, t.TempDir(), args...)
}

// StartRedisIn is StartRedis with dir as the data directory, for a server
// that loads data prepared there (a restored backup).
func StartRedisIn(t testing.TB, dir string, args ...string) *Redis {
	t.Helper()
	bin := Binary(t, "redis-server")
	r := &Redis{Dir: dir}
	r.args = append([]string{}, args...)
	r.start(t, bin, FreePort(t))
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start(t testing.TB, bin string, port int) {
	t.Helper()
	r.Port = port
	r.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	r.log = filepath.Join(r.Dir, "redis.log")
	args := append([]string{}, r.args...)
	if len(args) == 0 || strings.HasPrefix(args[0], "--") {
		// redis-server reads a config file only as its first argument.
		// An empty file of its own, never /dev/null: CONFIG REWRITE (which
		// Sentinel sends to the servers it reconfigures) replaces the
		// config file by a rename, and /dev/null became a regular file for
		// the whole machine.
		conf := filepath.Join(r.Dir, "redis.conf")
		if err := os.WriteFile(conf, nil, 0o600); err != nil {
			t.Fatalf("cannot write redis.conf: %v", err)
		}
		args = append([]string{"--save", ""}, args...)
		args = append([]string{conf}, args...)
	}
	args = append(args, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--logfile", r.log, "--daemonize", "no")
	r.cmd = exec.Command(bin, args...)
	// Config errors go to stderr before the log file is opened.
	stderr, err := os.Create(filepath.Join(r.Dir, "stderr.log"))
	if err != nil {
		t.Fatalf("cannot create redis-server's stderr file: %v", err)
	}
	defer stderr.Close() //nolint:errcheck // The child holds its own descriptor.
	r.cmd.Stdout, r.cmd.Stderr = stderr, stderr
	exited := make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("cannot start redis-server: %v", err)
	}
	cmd := r.cmd
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(time.Minute) // A hung start, not a measure: the machine may be busy.
	for {
		c, err := net.DialTimeout("tcp", r.Addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("redis-server exited instead of listening on %s:\n%s%s", r.Addr, readFile(filepath.Join(r.Dir, "stderr.log")), r.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start on %s: %v\n%s", r.Addr, err, r.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server and waits for it to exit. Stopping twice is harmless.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	// The goroutine started with the process reaps it; wait for the port to
	// be released so a restart can bind it again.
	for range 100 {
		c, err := net.DialTimeout("tcp", r.Addr, 50*time.Millisecond)
		if err != nil {
			break
		}
		_ = c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	r.cmd = nil
}

// Restart stops the server and starts it again on the same port with the same
// arguments, as a pod restart would. Users created at runtime and not saved to
// an ACL file are gone afterwards.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	r.start(t, Binary(t, "redis-server"), r.Port)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// Log returns the server's log file, for failure messages.
func (r *Redis) Log() string {
	f, err := os.Open(r.log)
	if err != nil {
		return ""
	}
	defer f.Close() //nolint:errcheck // Read-only.
	var b strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		b.WriteString(s.Text())
		b.WriteByte('\n')
	}
	return b.String()
}

// Freeze stops the server's process without ending it (SIGSTOP), as a frozen
// or cut-off pod: it keeps its data and users, and answers nothing until
// Thaw.
func (r *Redis) Freeze(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("cannot freeze redis-server: %v", err)
	}
}

// Thaw lets a frozen server run again (SIGCONT).
func (r *Redis) Thaw(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("cannot thaw redis-server: %v", err)
	}
}
