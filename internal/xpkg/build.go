package xpkg

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/version"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// A Package is one of the project's Crossplane packages.
type Package struct {
	// Name is the package's repository name and the name its object gets when
	// installed, e.g. function-redishttp.
	Name string
	// Root is the package root, relative to the repository: the directory
	// holding crossplane.yaml and the package's other YAML.
	Root string
	// Main is the Go package of the runtime binary, e.g. ./cmd/function; empty
	// for a Configuration.
	Main string
	// Entrypoint is where the binary lives in the runtime image, e.g. /function.
	Entrypoint string
}

// The project's packages, in install order.
var (
	Function                = Package{Name: "function-redishttp", Root: "package/function", Main: "./cmd/function", Entrypoint: "/function"}
	Provider                = Package{Name: "provider-redishttp", Root: "package/provider", Main: "./cmd/provider", Entrypoint: "/provider"}
	Configuration           = Package{Name: "configuration-redishttp", Root: "package/configuration"}
	ConfigurationNamespaced = Package{Name: "configuration-redishttp-namespaced", Root: "package/configuration-namespaced"}
)

// An Image is a runtime image of the project that is not in a package: one
// static binary, run by the pods the function composes.
type Image struct {
	// Name is the image's repository name, e.g. gateway-redishttp.
	Name string
	// Main is the Go package of the binary, e.g. ./cmd/gateway.
	Main string
	// Entrypoint is where the binary lives in the image, e.g. /gateway.
	Entrypoint string
}

// Gateway is the HTTP gateway's image, which the function's gateway
// Deployments run.
var Gateway = Image{Name: "gateway-redishttp", Main: "./cmd/gateway", Entrypoint: "/gateway"}

// Coordinator is the image of the coordinator in every pod of an instance
// with replicas (cmd/coordinator).
var Coordinator = Image{Name: "coordinator-redishttp", Main: "./cmd/coordinator", Entrypoint: "/coordinator"}

// Backup is the image of cmd/backup, which the function's backup CronJobs
// and restore init containers run.
var Backup = Image{Name: "backup-redishttp", Main: "./cmd/backup", Entrypoint: "/backup"}

// A Target is what Build builds: an Image or a Package.
type Target interface {
	// TargetName is the image's or package's repository name.
	TargetName() string
	// build writes the target's tarball, tagged ref, and returns its path.
	build(ctx context.Context, o Options, ref string) (string, error)
}

// TargetName is the image's repository name.
func (i Image) TargetName() string { return i.Name }

func (i Image) build(ctx context.Context, o Options, ref string) (string, error) {
	return imageTarball(ctx, o, i.Name, i.Main, i.Entrypoint, ref)
}

// TargetName is the package's repository name.
func (p Package) TargetName() string { return p.Name }

// Targets returns every image and package, images first (the function's
// package names the gateway and coordinator images), packages in install order.
func Targets() []Target {
	return []Target{Gateway, Coordinator, Backup, Function, Provider, Configuration, ConfigurationNamespaced}
}

// Options configure Build.
type Options struct {
	// RepoRoot is the repository checkout.
	RepoRoot string
	// OutDir receives <name>-<version>.xpkg files, plus bin/, images/ and
	// stage/ working directories.
	OutDir string
	// Registry is where packages live, with the organisation, e.g.
	// xpkg.crossplane.io/ai-decenter or 127.0.0.1:5000/ai-decenter.
	Registry string
	// Version is the package version (a semver tag), e.g. v0.1.0. Binaries,
	// runtime images and packages are stamped with it.
	Version string
	// Crossplane is the path of the crossplane CLI.
	Crossplane string
	// Go is the go command; "go" when empty.
	Go string
}

// An Artifact is a built image or package.
type Artifact struct {
	// Name is the image's or package's repository name.
	Name string
	// File is the image tarball or .xpkg file.
	File string
	// Ref is where it is pushed: <registry>/<name>:<version>.
	Ref string
}

// Build builds the given images and packages, in order, and returns what it
// wrote.
func Build(ctx context.Context, o Options, targets ...Target) ([]Artifact, error) {
	if o.Go == "" {
		o.Go = "go"
	}
	out := make([]Artifact, 0, len(targets))
	for _, t := range targets {
		a := Artifact{Name: t.TargetName(), Ref: fmt.Sprintf("%s/%s:%s", o.Registry, t.TargetName(), o.Version)}
		var err error
		if a.File, err = t.build(ctx, o, a.Ref); err != nil {
			return out, errors.Wrapf(err, "cannot build %q", a.Name)
		}
		out = append(out, a)
	}
	return out, nil
}

func (p Package) build(ctx context.Context, o Options, _ string) (string, error) {
	file := filepath.Join(o.OutDir, fmt.Sprintf("%s-%s.xpkg", p.Name, o.Version))
	stage := filepath.Join(o.OutDir, "stage", p.Name)
	if err := stageRoot(filepath.Join(o.RepoRoot, p.Root), stage, o.Registry, o.Version); err != nil {
		return "", err
	}
	args := []string{"xpkg", "build", "--package-root=" + stage, "--package-file=" + file,
		// Without this the CLI embeds ./examples of the working directory.
		"--examples-root=" + filepath.Join(stage, "examples")}
	if p.Main != "" {
		rt, err := runtimeImage(ctx, o, p)
		if err != nil {
			return "", err
		}
		args = append(args, "--embed-runtime-image-tarball="+rt)
	}
	_ = os.Remove(file)
	return file, run(ctx, o.RepoRoot, nil, o.Crossplane, args...)
}

// runtimeImage compiles p's binary and writes its runtime image tarball.
func runtimeImage(ctx context.Context, o Options, p Package) (string, error) {
	return imageTarball(ctx, o, p.Name+"-runtime", p.Main, p.Entrypoint, fmt.Sprintf("%s/%s-runtime:%s", o.Registry, p.Name, o.Version))
}

// imageTarball compiles main as a static linux/amd64 binary and writes the
// image holding it at entrypoint to <OutDir>/images/<name>.tar, tagged tag.
func imageTarball(ctx context.Context, o Options, name, main, entrypoint, tag string) (string, error) {
	bin := filepath.Join(o.OutDir, "bin", "linux_amd64", path.Base(entrypoint))
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}
	ld := "-s -w " + version.LDFlag(o.Version)
	if main == Function.Main {
		// The function composes gateway Deployments running the gateway
		// image built and published with it.
		ld += fmt.Sprintf(" -X main.gatewayImage=%s/%s:%s", o.Registry, Gateway.Name, o.Version)
		ld += fmt.Sprintf(" -X main.coordinatorImage=%s/%s:%s", o.Registry, Coordinator.Name, o.Version)
		ld += fmt.Sprintf(" -X main.backupImage=%s/%s:%s", o.Registry, Backup.Name, o.Version)
	}
	if err := run(ctx, o.RepoRoot, env, o.Go, "build", "-trimpath", "-buildvcs=false", "-ldflags", ld, "-o", bin, main); err != nil {
		return "", err
	}
	img, err := RuntimeImage(bin, entrypoint)
	if err == nil {
		img, err = withVersion(img, o.Version)
	}
	if err != nil {
		return "", err
	}
	file := filepath.Join(o.OutDir, "images", name+".tar")
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
		return "", errors.Wrap(err, "cannot create image directory")
	}
	return file, WriteImage(img, tag, file)
}

// stageRoot copies the YAML files of a package root to dir, rewriting the
// packages crossplane.yaml depends on to live in registry and annotating it
// with the package's version.
func stageRoot(root, dir, registry, version string) error {
	if err := os.RemoveAll(dir); err != nil {
		return errors.Wrapf(err, "cannot clean %q", dir)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o750)
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		b, err := os.ReadFile(p) //nolint:gosec // Files of our own package root.
		if err != nil {
			return err
		}
		if rel == "crossplane.yaml" {
			if b, err = RewriteMeta(b, registry, version); err != nil {
				return err
			}
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o600) //nolint:gosec // rel comes from walking our own package root.
	})
	return errors.Wrapf(err, "cannot stage package root %q", root)
}

// AnnotationVersion on a package's metadata (crossplane.yaml) is the version
// it was built as, the version its binaries answer to --version.
const AnnotationVersion = "redishttp.io/version"

// RewriteMeta returns the package metadata meta annotated with version
// (AnnotationVersion) and with every spec.dependsOn package (and the
// deprecated function/provider/configuration fields) moved to registry,
// keeping the repository's last path element: xpkg.example.org/acme/function-x
// becomes <registry>/function-x.
func RewriteMeta(meta []byte, registry, version string) ([]byte, error) {
	m := map[string]any{}
	if err := yaml.Unmarshal(meta, &m); err != nil {
		return nil, errors.Wrap(err, "cannot parse crossplane.yaml")
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		m["metadata"] = md
	}
	ann, _ := md["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		md["annotations"] = ann
	}
	ann[AnnotationVersion] = version
	spec, _ := m["spec"].(map[string]any)
	deps, _ := spec["dependsOn"].([]any)
	for _, d := range deps {
		dep, ok := d.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range []string{"package", "function", "provider", "configuration"} {
			if s, ok := dep[k].(string); ok && s != "" {
				dep[k] = strings.TrimSuffix(registry, "/") + "/" + path.Base(s)
			}
		}
	}
	out, err := yaml.Marshal(m)
	return out, errors.Wrap(err, "cannot write crossplane.yaml")
}

// Push pushes the package file to ref (<registry>/<name>:<tag>). Loopback and
// private registries are spoken to over plain HTTP; others use the credentials
// of the local docker config, as `crossplane xpkg push` does.
func Push(ctx context.Context, file, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return errors.Wrapf(err, "cannot parse package reference %q", ref)
	}
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		return errors.Wrapf(err, "cannot read package %q", file)
	}
	err = remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	return errors.Wrapf(err, "cannot push %q to %q", file, ref)
}

func run(ctx context.Context, dir string, env []string, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...) //nolint:gosec // Our own build commands (go, the pinned crossplane CLI).
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.Wrapf(err, "%s %s failed: %s", filepath.Base(bin), strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return nil
}
