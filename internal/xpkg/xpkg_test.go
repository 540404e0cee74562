package xpkg

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestRuntimeImage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "function")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := RuntimeImage(bin, "/function")
	if err != nil {
		t.Fatalf("RuntimeImage(...): %v", err)
	}
	b, err := RuntimeImage(bin, "/function")
	if err != nil {
		t.Fatalf("RuntimeImage(...): %v", err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("RuntimeImage(...): the same binary gave two digests, %s and %s: the layer is not reproducible", da, db)
	}
	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	type cfg struct {
		User, OS, Arch string
		Entrypoint     []string
	}
	want := cfg{User: NonRootUser, OS: "linux", Arch: "amd64", Entrypoint: []string{"/function"}}
	got := cfg{User: cf.Config.User, OS: cf.OS, Arch: cf.Architecture, Entrypoint: cf.Config.Entrypoint}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RuntimeImage(...): -want, +got:\n%s", diff)
	}
}

func TestRewriteDependencies(t *testing.T) {
	type want struct {
		deps []map[string]any
	}
	cases := map[string]struct {
		reason   string
		meta     string
		registry string
		want     want
	}{
		"PackageAndDeprecatedFields": {
			reason:   "Both the package field and the deprecated function field should move to the registry, keeping the repository name and the version constraint.",
			meta:     "spec:\n  dependsOn:\n  - {apiVersion: pkg.crossplane.io/v1, kind: Provider, package: xpkg.crossplane.io/acme/provider-x, version: '>=v0.1.0'}\n  - {function: xpkg.crossplane.io/acme/function-y, version: '>=v1.0.0'}\n",
			registry: "127.0.0.1:5000/ai-decenter/",
			want: want{deps: []map[string]any{
				{"apiVersion": "pkg.crossplane.io/v1", "kind": "Provider", "package": "127.0.0.1:5000/ai-decenter/provider-x", "version": ">=v0.1.0"},
				{"function": "127.0.0.1:5000/ai-decenter/function-y", "version": ">=v1.0.0"},
			}},
		},
		"NoDependencies": {
			reason:   "A package without dependencies should come back unchanged.",
			meta:     "kind: Function\nspec: {}\n",
			registry: "example.org/x",
			want:     want{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := RewriteDependencies([]byte(tc.meta), tc.registry)
			if err != nil {
				t.Fatalf("%s\nRewriteDependencies(...): %v", tc.reason, err)
			}
			var got struct {
				Spec struct {
					DependsOn []map[string]any `json:"dependsOn"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want.deps, got.Spec.DependsOn); diff != "" {
				t.Errorf("%s\nRewriteDependencies(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
