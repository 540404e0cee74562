// Package process supervises one local program for the local control plane
// and the pod runner: in its own process group, killed if its supervisor
// dies, its output in a log file, its pid in a pid file while it runs, and a
// graceful stop.
package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// A Process is one run of a program.
type Process struct {
	// Name names the process in errors.
	Name string
	// Argv is the program and its arguments (a wrapper such as unshare(1)
	// goes first).
	Argv []string
	// Env is the whole environment; nil means an empty one.
	Env []string
	// Dir is the working directory; the caller's when empty.
	Dir string
	// Log receives stdout and stderr, appended.
	Log string
	// PidFile, when set, holds the pid while the process runs.
	PidFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

// Start starts the process in its own process group (so a terminal's ^C
// reaches only the supervisor, which stops everything in order) and records
// its pid.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.Argv) == 0 {
		return errors.Errorf("cannot start %q: no program", p.Name)
	}
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o750); err != nil {
		return errors.Wrap(err, "cannot create log directory")
	}
	lf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return errors.Wrapf(err, "cannot open log of %q", p.Name)
	}
	// The process outlives any request: Stop ends it, not a context.
	cmd := exec.CommandContext(context.Background(), p.Argv[0], p.Argv[1:]...) //nolint:gosec // Programs the harness chose, or a pod's own command.
	cmd.Env = p.Env
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Pdeathsig: if the supervisor (make dev's background process, or a test
	// binary) dies without stopping us, so do we, instead of leaking.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	_, _ = fmt.Fprintf(lf, "--- %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(p.Argv, " "))
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return errors.Wrapf(err, "cannot start %q", p.Name)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		_ = lf.Close()
		p.mu.Lock()
		p.code = cmd.ProcessState.ExitCode()
		p.mu.Unlock()
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

// Exited returns a channel closed when the process exits (nil before Start).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Running reports whether the process has been started and not exited.
func (p *Process) Running() bool {
	done := p.Exited()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// ExitCode is the exit code once the process exited (-1 if a signal ended it).
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
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

// Signal sends sig to the process's whole group: what a signal to a
// container's init process amounts to (its children go with it).
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return errors.Errorf("cannot signal %q: not started", p.Name)
	}
	return errors.Wrapf(syscall.Kill(-cmd.Process.Pid, sig), "cannot signal %q", p.Name)
}

// Stop sends SIGTERM to the process group, waits up to grace for the process
// to exit, then kills the group (children a script left behind go with it)
// and removes the pid file. Stopping a stopped process is harmless.
func (p *Process) Stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if p.PidFile != "" {
		_ = os.Remove(p.PidFile)
	}
}

// Tail returns the last n bytes of the process's log, for error messages.
func (p *Process) Tail(n int) string { return Tail(p.Log, n) }

// Tail returns the last n bytes of a file, trimmed, for error messages.
func Tail(file string, n int) string {
	b, err := os.ReadFile(file) //nolint:gosec // Our own log files.
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
