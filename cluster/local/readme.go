package local

import (
	"bufio"
	"bytes"
	"path"
	"strings"

	"github.com/ai-decenter/redishttp/internal/xpkg"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// installCommands returns the commands of README.md's "## Install" console
// block, so the control plane installs the packages exactly as users are told
// to: continued lines joined, comments dropped, only the Configuration of
// mode, and every package reference moved to registry and version (the README
// names the public registry).
func installCommands(readme []byte, mode Mode, registry, version string) ([][]string, error) {
	var cmds [][]string
	in, block, cont := false, false, ""
	s := bufio.NewScanner(bytes.NewReader(readme))
	for s.Scan() {
		l := s.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			in = l == "## Install"
			continue
		case !in:
			continue
		case strings.HasPrefix(l, "```"):
			if block {
				in = false // The first block of the section only.
			}
			block = !block
			continue
		case !block:
			continue
		}
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "#"); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if l == "" {
			continue
		}
		if head, ok := strings.CutSuffix(l, `\`); ok {
			cont += head + " "
			continue
		}
		cmds = append(cmds, strings.Fields(cont+l))
		cont = ""
	}
	if len(cmds) == 0 {
		return nil, errors.New(`README.md has no "## Install" console block`)
	}
	names := map[string]bool{}
	for _, t := range xpkg.Targets() {
		names[t.TargetName()] = true
	}
	want := packagesFor(mode)[2].Name
	out := make([][]string, 0, len(cmds))
	for _, c := range cmds {
		skip := false
		for i, a := range c {
			ref, _, _ := strings.Cut(a, ":")
			if i == 0 || !strings.Contains(a, "/") || !names[path.Base(ref)] {
				continue
			}
			name := path.Base(ref)
			// The one Configuration of mode, of the README's alternatives.
			if strings.HasPrefix(name, "configuration-") && name != want {
				skip = true
			}
			c[i] = strings.TrimSuffix(registry, "/") + "/" + name + ":" + version
		}
		if !skip {
			out = append(out, c)
		}
	}
	return out, nil
}
