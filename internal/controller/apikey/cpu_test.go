package apikey

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is Linux's USER_HZ: /proc/<pid>/stat counts CPU time in it.
const clockTicks = 100

// cpuTimes returns the CPU time this process and each process it started
// (kube-apiserver, etcd, redis-server) used so far, by command name: what a
// benchmark spent, and where, on a machine the processes share.
func cpuTimes() map[string]time.Duration {
	self := strconv.Itoa(os.Getpid())
	out := map[string]time.Duration{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: comm may hold spaces.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		comm, f := s[open+1:end], strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		pid := filepath.Base(d)
		switch {
		case pid == self:
			comm = "test (provider, client)"
		case f[1] != self:
			continue
		}
		u, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		out[comm] += time.Duration(u+st) * time.Second / clockTicks
	}
	return out
}

// cpuSince formats the CPU time each process used since before, largest
// first.
func cpuSince(before map[string]time.Duration) string {
	now := cpuTimes()
	used := map[string]time.Duration{}
	for k, v := range now {
		used[k] = v - before[k]
	}
	names := slices.SortedFunc(maps.Keys(used), func(a, b string) int { return int(used[b] - used[a]) })
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s %.1fs, ", k, used[k].Seconds())
	}
	return strings.TrimSuffix(b.String(), ", ")
}
