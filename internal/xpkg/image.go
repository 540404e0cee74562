package xpkg

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// NonRootUser is the uid:gid the runtime images run as.
var NonRootUser = fmt.Sprintf("%d:%d", contract.ImageUID, contract.ImageUID)

// LabelVersion is the OCI image label holding the version a runtime image
// was built as.
const LabelVersion = "org.opencontainers.image.version"

// RuntimeImage returns a linux/amd64 image holding one static binary at
// entrypoint (for example "/function"), run as NonRootUser. The image is
// reproducible: file owner, mode and times are fixed, so the same binary always
// yields the same digest.
func RuntimeImage(binary, entrypoint string) (v1.Image, error) {
	b, err := os.ReadFile(binary) //nolint:gosec // The binary we just built.
	if err != nil {
		return nil, errors.Wrapf(err, "cannot read binary %q", binary)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar(path.Clean(entrypoint)[1:], b))), nil
	})
	if err != nil {
		return nil, errors.Wrap(err, "cannot make image layer")
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, errors.Wrap(err, "cannot append image layer")
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, errors.Wrap(err, "cannot read image config")
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = []string{entrypoint}
	cf.Config.User = NonRootUser
	cf.Config.WorkingDir = "/"
	img, err = mutate.ConfigFile(img, cf)
	return img, errors.Wrap(err, "cannot set image config")
}

// withVersion labels img with the version it was built as (LabelVersion).
func withVersion(img v1.Image, version string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, errors.Wrap(err, "cannot read image config")
	}
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[LabelVersion] = version
	img, err = mutate.ConfigFile(img, cf)
	return img, errors.Wrap(err, "cannot label image")
}

// layerTar is a tar holding file (a path without leading slash) with content b,
// mode 0755, owned by root, dated the epoch.
func layerTar(file string, b []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	// Writes to a bytes.Buffer do not fail.
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: file, Mode: 0o755, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX})
	_, _ = tw.Write(b)
	_ = tw.Close()
	return buf.Bytes()
}

// WriteImage writes img as a docker-style image tarball (what `crossplane xpkg
// build --embed-runtime-image-tarball` reads) tagged tag.
func WriteImage(img v1.Image, tag, file string) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return errors.Wrapf(err, "cannot parse image tag %q", tag)
	}
	return errors.Wrapf(tarball.WriteToFile(file, t, img), "cannot write image tarball %q", file)
}
