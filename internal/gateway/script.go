package gateway

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // Redis names scripts by their SHA-1; not used for security.
	"encoding/hex"
	"strings"
	"sync"
)

// Scripts makes Lua scripts written for Upstash run on Redis 7.0.
// @upstash/ratelimit >= 2.1 starts its scripts with
// "#!lua flags=allow-key-locking", a flag Redis 7.0 refuses. The flag is
// removed (other flags are kept) before Redis sees the script, and the
// script is known to Redis by the SHA-1 of the stripped text, while the
// client calls EVALSHA with the SHA-1 of the text it sent. So the SHA-1 of
// every stripped script is remembered (a bounded map) and EVALSHA,
// EVALSHA_RO and SCRIPT EXISTS of the original SHA-1 are translated; SCRIPT
// LOAD answers the original SHA-1. On another gateway replica, or after
// eviction from the map, EVALSHA answers NOSCRIPT and the client falls back
// to EVAL with the text, which is stripped again: it works across replicas.
type Scripts struct {
	max int
	mu  sync.RWMutex
	sha map[string]string // original SHA-1 -> stripped SHA-1
}

// NewScripts remembers at most size translated SHA-1s.
func NewScripts(size int) *Scripts {
	return &Scripts{max: size, sha: make(map[string]string)}
}

const lockingFlag = "allow-key-locking"

// strip returns script without the allow-key-locking flag in its shebang,
// and whether it changed anything.
func strip(script []byte) ([]byte, bool) {
	if !bytes.HasPrefix(script, []byte("#!")) {
		return script, false
	}
	end := bytes.IndexByte(script, '\n')
	if end < 0 {
		end = len(script)
	}
	fields := strings.Fields(string(script[:end]))
	changed := false
	for i, f := range fields {
		flags, ok := strings.CutPrefix(f, "flags=")
		if !ok {
			continue
		}
		kept := make([]string, 0, 4)
		for fl := range strings.SplitSeq(flags, ",") {
			if fl == lockingFlag {
				changed = true
				continue
			}
			kept = append(kept, fl)
		}
		fields[i] = "flags=" + strings.Join(kept, ",")
		if len(kept) == 0 {
			fields[i] = ""
		}
	}
	if !changed {
		return script, false
	}
	line := strings.Join(strings.Fields(strings.Join(fields, " ")), " ")
	out := make([]byte, 0, len(script))
	out = append(out, line...)
	out = append(out, script[end:]...)
	return out, true
}

func sha1hex(b []byte) string {
	s := sha1.Sum(b) //nolint:gosec // See the import.
	return hex.EncodeToString(s[:])
}

func (s *Scripts) remember(orig, stripped []byte) string {
	o := sha1hex(orig)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sha[o]; !ok && len(s.sha) >= s.max {
		// Forget an arbitrary entry: its client gets NOSCRIPT once and
		// sends the script again.
		for k := range s.sha {
			delete(s.sha, k)
			break
		}
	}
	s.sha[o] = sha1hex(stripped)
	return o
}

func (s *Scripts) translate(sha []byte) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, ok := s.sha[strings.ToLower(string(sha))]; ok {
		return []byte(t)
	}
	return sha
}

// rewrite rewrites cmd in place. It returns the SHA-1 a SCRIPT LOAD must
// answer instead of Redis's, or "".
func (s *Scripts) rewrite(cmd [][]byte) string {
	var buf [32]byte
	switch commandName(&buf, cmd) {
	case "EVAL", "EVAL_RO":
		if len(cmd) > 1 {
			if st, ok := strip(cmd[1]); ok {
				s.remember(cmd[1], st)
				cmd[1] = st
			}
		}
	case "EVALSHA", "EVALSHA_RO":
		if len(cmd) > 1 {
			cmd[1] = s.translate(cmd[1])
		}
	case "SCRIPT":
		if len(cmd) < 2 {
			return ""
		}
		switch strings.ToUpper(string(cmd[1])) {
		case "LOAD":
			if len(cmd) == 3 {
				if st, ok := strip(cmd[2]); ok {
					o := s.remember(cmd[2], st)
					cmd[2] = st
					return o
				}
			}
		case "EXISTS":
			for i := 2; i < len(cmd); i++ {
				cmd[i] = s.translate(cmd[i])
			}
		}
	}
	return ""
}
