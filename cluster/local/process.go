package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// A Process is one program the control plane runs, with its log file and,
// while it runs, a pid file.
type Process struct {
	Name string
	Path string
	Args []string
	Env  []string
	// Wrap, when set, runs the process under another command, for example
	// unshare(1); Wrap[0] is the program and the rest its leading arguments.
	Wrap []string
	// Dir is the working directory; the caller's when empty.
	Dir string

	Log     string
	PidFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process in its own process group (so a terminal's ^C
// reaches only the supervisor, which stops everything in order) and records
// its pid.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o750); err != nil {
		return errors.Wrap(err, "cannot create log directory")
	}
	lf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return errors.Wrapf(err, "cannot open log of %q", p.Name)
	}
	argv := append(append([]string{}, p.Wrap...), p.Path)
	argv = append(argv, p.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Dir = p.Dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	// Pdeathsig: if the supervisor (make dev's background process, or the
	// test binary) dies without stopping us, so do we, instead of leaking.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	_, _ = fmt.Fprintf(lf, "--- %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return errors.Wrapf(err, "cannot start %q", p.Name)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		_ = lf.Close()
		close(done)
	}(p.done)
	if p.PidFile != "" {
		if err := os.MkdirAll(filepath.Dir(p.PidFile), 0o750); err != nil {
			return errors.Wrap(err, "cannot create pid directory")
		}
		if err := os.WriteFile(p.PidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
			return errors.Wrapf(err, "cannot write pid file of %q", p.Name)
		}
	}
	return nil
}

// Running reports whether the process has been started and not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the process id, 0 if never started.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then kills
// it, and removes its pid file. Stopping a stopped process is harmless.
func (p *Process) Stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
	if p.PidFile != "" {
		_ = os.Remove(p.PidFile)
	}
}

// Tail returns the last n bytes of the process's log, for error messages.
func (p *Process) Tail(n int) string {
	return tail(p.Log, n)
}

func tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// StopPidFiles stops the processes recorded in the pid files of dir, newest
// (highest sequence number) first, one at a time: SIGTERM, then SIGKILL after
// grace. It is how `make dev-down` stops what `make dev` started, and nothing
// else.
func StopPidFiles(dir string, grace time.Duration, logf func(format string, args ...any)) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.pid"))
	if err != nil {
		return errors.Wrap(err, "cannot list pid files")
	}
	// Names start with a zero-padded start sequence; reverse lexical order is
	// reverse start order.
	for _, f := range slices.Backward(files) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			_ = os.Remove(f)
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".pid")
		if alive(pid) {
			logf("stopping %s (pid %d)", name, pid)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(grace)
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				for alive(pid) {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		_ = os.Remove(f)
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
