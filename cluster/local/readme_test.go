package local

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInstallCommands(t *testing.T) {
	readme := []byte("# x\n\n## Install\n\n```console\n# RBAC first:\nkubectl apply -f examples/rbac.yaml\n" +
		"crossplane xpkg install provider xpkg.crossplane.io/ai-decenter/provider-redishttp:v0.1.0 provider-redishttp \\\n  --runtime-config=provider-redishttp\n" +
		"crossplane xpkg install function xpkg.crossplane.io/ai-decenter/function-redishttp:v0.1.0 function-redishttp\n" +
		"crossplane xpkg install configuration xpkg.crossplane.io/ai-decenter/configuration-redishttp:v0.1.0\n" +
		"#   or, namespaced:\ncrossplane xpkg install configuration xpkg.crossplane.io/ai-decenter/configuration-redishttp-namespaced:v0.1.0\n" +
		"```\n\n```console\nkubectl delete everything\n```\n\n## Next\n\n```console\nrm -rf /\n```\n")
	reg := "127.0.0.1:5000/ai-decenter"
	common := [][]string{
		{"kubectl", "apply", "-f", "examples/rbac.yaml"},
		{"crossplane", "xpkg", "install", "provider", reg + "/provider-redishttp:v9", "provider-redishttp", "--runtime-config=provider-redishttp"},
		{"crossplane", "xpkg", "install", "function", reg + "/function-redishttp:v9", "function-redishttp"},
	}
	cases := map[string]struct {
		reason string
		mode   Mode
		want   [][]string
	}{
		"Claim": {
			reason: "Claim mode runs the Install block's commands with the local registry, and the claim Configuration only.",
			mode:   ModeClaim,
			want:   append(common[:3:3], []string{"crossplane", "xpkg", "install", "configuration", reg + "/configuration-redishttp:v9"}),
		},
		"Namespaced": {
			reason: "Namespaced mode installs the namespaced Configuration instead.",
			mode:   ModeNamespaced,
			want:   append(common[:3:3], []string{"crossplane", "xpkg", "install", "configuration", reg + "/configuration-redishttp-namespaced:v9"}),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := installCommands(readme, tc.mode, reg, "v9")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\ninstallCommands(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestREADMEInstallRuns keeps the README's Install block something the
// control plane can run: it installs the function, the provider and each
// mode's Configuration with the crossplane CLI.
func TestREADMEInstallRuns(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Mode{ModeClaim, ModeNamespaced} {
		cmds, err := installCommands(readme, m, "127.0.0.1:5000/ai-decenter", "v0.1.0")
		if err != nil {
			t.Fatal(err)
		}
		installs := map[string]bool{}
		for _, c := range cmds {
			if len(c) > 4 && c[0] == "crossplane" && c[1] == "xpkg" && c[2] == "install" {
				installs[c[3]] = true
			}
			if c[0] != "crossplane" && c[0] != "kubectl" {
				t.Errorf("README Install block: %q is neither kubectl nor crossplane", c)
			}
		}
		if diff := cmp.Diff(map[string]bool{"function": true, "provider": true, "configuration": true}, installs); diff != "" {
			t.Errorf("README's Install block should install every package kind in mode %s.\n-want, +got:\n%s", m, diff)
		}
	}
}
