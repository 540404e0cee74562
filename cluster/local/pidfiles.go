package local

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

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
