package podrunner

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// ErrNotRunnable says a container's image is not one the runner can run.
var ErrNotRunnable = errors.New("image cannot run on this machine")

// A Resolver returns the argv a container with image, command and args runs
// on this machine (its programs as local paths), or ErrNotRunnable.
type Resolver func(ctx context.Context, image string, command, args []string) ([]string, error)

// Chain tries each resolver in turn.
func Chain(rs ...Resolver) Resolver {
	return func(ctx context.Context, image string, command, args []string) ([]string, error) {
		for _, r := range rs {
			argv, err := r(ctx, image, command, args)
			if !errors.Is(err, ErrNotRunnable) {
				return argv, err
			}
		}
		return nil, ErrNotRunnable
	}
}

// Redis runs the official Redis images (any image whose repository's last
// element is redis) with this machine's redis-server, redis-cli and sh: a
// command runs as written; without one, the image's entrypoint rule applies
// (arguments starting with a flag or a .conf file go to redis-server, other
// arguments are the command, none runs redis-server).
func Redis(_ context.Context, image string, command, args []string) ([]string, error) {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	if path.Base(repo) != "redis" {
		return nil, ErrNotRunnable
	}
	argv := append(append([]string{}, command...), args...)
	switch {
	case len(command) > 0:
	case len(args) == 0:
		argv = []string{"redis-server"}
	case strings.HasPrefix(args[0], "-") || strings.HasSuffix(args[0], ".conf"):
		argv = append([]string{"redis-server"}, args...)
	}
	return argv, nil
}

// Registry runs images of the registry prefix (e.g. 127.0.0.1:5000/org)
// whose repository is in repos: single static binaries, as this project's
// runtime images are. The binary at the image's entrypoint (or at the
// command's first element) is taken out of the image once per digest into
// cacheDir. Loopback registries are spoken to over plain HTTP.
func Registry(prefix, cacheDir string, repos ...string) Resolver {
	var mu sync.Mutex
	return func(ctx context.Context, image string, command, args []string) ([]string, error) {
		rest, ok := strings.CutPrefix(image, strings.TrimSuffix(prefix, "/")+"/")
		if !ok {
			return nil, ErrNotRunnable
		}
		repo, _, _ := strings.Cut(rest, ":")
		repo, _, _ = strings.Cut(repo, "@")
		known := false
		for _, r := range repos {
			known = known || r == repo
		}
		if !known {
			return nil, ErrNotRunnable
		}
		ref, err := name.ParseReference(image, name.Insecure)
		if err != nil {
			return nil, errors.Wrapf(err, "cannot parse image %q", image)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			return nil, errors.Wrapf(err, "cannot pull image %q", image)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, errors.Wrapf(err, "cannot read the config of image %q", image)
		}
		argv := append(append([]string{}, command...), args...)
		if len(command) == 0 {
			argv = append(append([]string{}, cf.Config.Entrypoint...), args...)
		}
		if len(argv) == 0 {
			return nil, errors.Errorf("image %q has no entrypoint and the container no command", image)
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, errors.Wrapf(err, "cannot read the digest of image %q", image)
		}
		bin := filepath.Join(cacheDir, digest.Hex, path.Base(argv[0]))
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stat(bin); err != nil {
			if err := extract(img, argv[0], bin); err != nil {
				return nil, errors.Wrapf(err, "cannot take %q out of image %q", argv[0], image)
			}
		}
		argv[0] = bin
		return argv, nil
	}
}

// extract writes the file at path p of img's filesystem to out, executable.
func extract(img v1.Image, p, out string) error {
	rc := mutate.Extract(img)
	defer rc.Close() //nolint:errcheck // Read-only.
	want := strings.TrimPrefix(path.Clean(p), "/")
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return errors.Errorf("no file %q in the image", p)
		}
		if err != nil {
			return errors.Wrap(err, "cannot read the image's layers")
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") != want || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
			return errors.Wrap(err, "cannot create the image cache")
		}
		tmp := out + ".tmp"
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700) //nolint:gosec // An executable we run.
		if err != nil {
			return errors.Wrap(err, "cannot write the binary")
		}
		if _, err := io.Copy(f, tr); err != nil { //nolint:gosec // Our own images, size bounded by the registry.
			_ = f.Close()
			return errors.Wrap(err, "cannot write the binary")
		}
		if err := f.Close(); err != nil {
			return errors.Wrap(err, "cannot write the binary")
		}
		return errors.Wrap(os.Rename(tmp, out), "cannot write the binary")
	}
}
