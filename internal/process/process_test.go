package process

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestProcess(t *testing.T) {
	dir := t.TempDir()
	p := &Process{
		Name:    "sleeper",
		Argv:    []string{"sh", "-c", `echo started; sleep 60 & wait`},
		Log:     filepath.Join(dir, "logs", "sleeper.log"),
		PidFile: filepath.Join(dir, "pids", "sleeper.pid"),
	}
	if p.Running() {
		t.Error("Running(): a process never started should not be running")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.PidFile)
	if err != nil {
		t.Fatalf("the pid file should exist while the process runs: %v", err)
	}
	if diff := cmp.Diff(strconv.Itoa(p.Pid()), strings.TrimSpace(string(b))); diff != "" {
		t.Errorf("pid file: -want, +got:\n%s", diff)
	}
	if !p.Running() {
		t.Error("Running(): a started process should be running")
	}
	p.Stop(5 * time.Second)
	select {
	case <-p.Exited():
	default:
		t.Error("Exited(): Stop should return only once the process exited")
	}
	if _, err := os.Stat(p.PidFile); !os.IsNotExist(err) {
		t.Errorf("Stop should remove the pid file: %v", err)
	}
	if !strings.Contains(p.Tail(100), "started") {
		t.Errorf("Tail(100): want the process's output, got %q", p.Tail(100))
	}
}

func TestExitCode(t *testing.T) {
	p := &Process{Name: "fails", Argv: []string{"sh", "-c", "exit 3"}, Log: filepath.Join(t.TempDir(), "fails.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	if diff := cmp.Diff(3, p.ExitCode()); diff != "" {
		t.Errorf("ExitCode(): -want, +got:\n%s", diff)
	}
}
