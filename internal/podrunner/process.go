package podrunner

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

// A proc is one run of a container's program.
type proc struct {
	argv    []string
	env     []string
	dir     string
	log     string
	pidFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return errors.Wrap(err, "cannot open container log")
	}
	// The process outlives any request: Stop ends it, not a context.
	cmd := exec.CommandContext(context.Background(), p.argv[0], p.argv[1:]...) //nolint:gosec // The pod's own command, resolved by the Resolver.
	cmd.Env = p.env
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group, and it dies with the runner's process rather
	// than leak when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	_, _ = fmt.Fprintf(lf, "--- %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(p.argv, " "))
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return errors.Wrapf(err, "cannot start %q", p.argv[0])
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
	if p.pidFile != "" {
		_ = os.MkdirAll(filepath.Dir(p.pidFile), 0o750)
		_ = os.WriteFile(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	}
	return nil
}

// exited returns a channel closed when the process exits.
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *proc) running() bool {
	select {
	case <-p.exited():
		return false
	default:
		return true
	}
}

func (p *proc) exitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// stop sends SIGTERM to the process group, waits up to grace, then kills it.
func (p *proc) stop(grace time.Duration) {
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
	// Children a script left behind go with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if p.pidFile != "" {
		_ = os.Remove(p.pidFile)
	}
}

// tail returns the last n bytes of a file, for error messages.
func tail(file string, n int) string {
	b, err := os.ReadFile(file) //nolint:gosec // Our own log files.
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
