package podrunner

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// mapPaths replaces container paths under a mount point with the local
// directory standing in for it. A mount point matches only as a whole path
// element: /etc/redis does not match /etc/redis-auth.
func mapPaths(s string, mounts map[string]string) string {
	points := make([]string, 0, len(mounts))
	for m := range mounts {
		points = append(points, m)
	}
	// Longest first, so /data/x wins over /data.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if i == 0 || !pathChar(s[i-1]) {
			for _, m := range points {
				end := i + len(m)
				if strings.HasPrefix(s[i:], m) && (end == len(s) || s[end] == '/' || !pathChar(s[end])) {
					b.WriteString(mounts[m])
					i = end
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

func pathChar(c byte) bool {
	return c == '/' || c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// rewriteTree maps container paths in every file under dir.
func rewriteTree(dir string, mounts map[string]string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p) //nolint:gosec // Files the runner wrote itself.
		if err != nil {
			return err
		}
		if out := mapPaths(string(b), mounts); out != string(b) {
			return os.WriteFile(p, []byte(out), 0o600) //nolint:gosec // Files the runner wrote itself.
		}
		return nil
	})
}

// expand replaces $(VAR) references as Kubernetes does for env values,
// command and args: unknown references stay as they are, $$ escapes a $.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// mapEnvPaths maps the environment variables whose whole value is a path
// under a mount point (DATA_DIR=/data), as a program reads such a path
// inside its container. Other values, secrets among them, are left as they
// are, whatever they contain.
func mapEnvPaths(vars, mounts map[string]string) {
	points := make([]string, 0, len(mounts))
	for m := range mounts {
		points = append(points, m)
	}
	// Longest first, so /data/x wins over /data.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for k, v := range vars {
		for _, m := range points {
			if rest, ok := strings.CutPrefix(v, m); ok && m != "" && (rest == "" || rest[0] == '/') {
				vars[k] = mounts[m] + rest
				break
			}
		}
	}
}
