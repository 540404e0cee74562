package xpkg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/version"
)

func TestRuntimeImage(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "function")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := RuntimeImage(bin, "/function")
	if err == nil {
		a, err = withVersion(a, "v1.2.3")
	}
	if err != nil {
		t.Fatalf("RuntimeImage(...): %v", err)
	}
	b, err := RuntimeImage(bin, "/function")
	if err == nil {
		b, err = withVersion(b, "v1.2.3")
	}
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
		Labels         map[string]string
	}
	want := cfg{User: "65532:65532", OS: "linux", Arch: "amd64", Entrypoint: []string{"/function"}, Labels: map[string]string{LabelVersion: "v1.2.3"}}
	got := cfg{User: cf.Config.User, OS: cf.OS, Arch: cf.Architecture, Entrypoint: cf.Config.Entrypoint, Labels: cf.Config.Labels}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RuntimeImage(...): -want, +got:\n%s", diff)
	}
}

func TestRewriteMeta(t *testing.T) {
	type want struct {
		deps        []map[string]any
		annotations map[string]string
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
			want: want{
				deps: []map[string]any{
					{"apiVersion": "pkg.crossplane.io/v1", "kind": "Provider", "package": "127.0.0.1:5000/ai-decenter/provider-x", "version": ">=v0.1.0"},
					{"function": "127.0.0.1:5000/ai-decenter/function-y", "version": ">=v1.0.0"},
				},
				annotations: map[string]string{AnnotationVersion: "v1.2.3"},
			},
		},
		"NoDependencies": {
			reason:   "A package without dependencies should keep its annotations and get its version.",
			meta:     "kind: Function\nmetadata:\n  annotations:\n    meta.crossplane.io/maintainer: us\nspec: {}\n",
			registry: "example.org/x",
			want:     want{annotations: map[string]string{"meta.crossplane.io/maintainer": "us", AnnotationVersion: "v1.2.3"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := RewriteMeta([]byte(tc.meta), tc.registry, "v1.2.3")
			if err != nil {
				t.Fatalf("%s\nRewriteMeta(...): %v", tc.reason, err)
			}
			var got struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
				Spec struct {
					DependsOn []map[string]any `json:"dependsOn"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want.deps, got.Spec.DependsOn); diff != "" {
				t.Errorf("%s\nRewriteMeta(...): -want dependencies, +got:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.annotations, got.Metadata.Annotations); diff != "" {
				t.Errorf("%s\nRewriteMeta(...): -want annotations, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestDockerfile checks the Dockerfile for people with Docker against the
// code it cannot import: the version stamp lands in internal/version, the
// function composes the gateway image built beside it, and every image is
// labelled with its version and runs as contract.ImageUID.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "cluster", "images", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		version.LDFlag("${VERSION}"),
		"-X main.gatewayImage=${REGISTRY}/" + Gateway.Name + ":${VERSION}",
		"-X main.coordinatorImage=${REGISTRY}/" + Coordinator.Name + ":${VERSION}",
		"-X main.backupImage=${REGISTRY}/" + Backup.Name + ":${VERSION}",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("cluster/images/Dockerfile does not contain %q", want)
		}
	}
	// Every runtime image derives from the one scratch stage, which says
	// both.
	for _, line := range []string{"FROM scratch AS runtime\n", "LABEL " + LabelVersion + "=${VERSION}\n", "USER " + NonRootUser + "\n"} {
		if n := strings.Count(df, "\n"+line); n != 1 {
			t.Errorf("cluster/images/Dockerfile: %q %d times, want once", strings.TrimSpace(line), n)
		}
	}
	binaries := 0
	for _, tg := range Targets() {
		if p, ok := tg.(Package); !ok || p.Main != "" {
			binaries++
		}
	}
	if n := strings.Count(df, "\nFROM runtime AS "); n != binaries {
		t.Errorf("cluster/images/Dockerfile: %d images from the runtime stage, want one per runtime image make build builds (%d)", n, binaries)
	}
}
