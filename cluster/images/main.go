// Command images builds the project's Crossplane packages (with their runtime
// images) and the gateway image without Docker, and publishes them to a
// registry. `make build` and `make
// publish` run it; see internal/xpkg.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"

	"github.com/alecthomas/kong"

	"github.com/ai-decenter/redishttp/internal/xpkg"
)

type common struct {
	Registry   string   `default:"xpkg.crossplane.io/ai-decenter" help:"Registry and organisation the packages (and their dependencies) live in."`
	Version    string   `default:"v0.1.0"                         help:"Package version (semver tag)."`
	Out        string   `default:"_output"                        help:"Output directory for .xpkg files."`
	Crossplane string   `default:"crossplane"                     help:"Path of the crossplane CLI."`
	Packages   []string `arg:""                                   help:"Packages and images to build (default: all)." optional:""`
}

// selected returns the packages and images named on the command line, or all.
func (c common) selected() ([]xpkg.Target, error) {
	if len(c.Packages) == 0 {
		return xpkg.Targets(), nil
	}
	var out []xpkg.Target
	for _, n := range c.Packages {
		i := slices.IndexFunc(xpkg.Targets(), func(t xpkg.Target) bool { return t.TargetName() == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown package or image %q", n)
		}
		out = append(out, xpkg.Targets()[i])
	}
	return out, nil
}

func (c common) build(ctx context.Context) ([]xpkg.Artifact, error) {
	targets, err := c.selected()
	if err != nil {
		return nil, err
	}
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(c.Out)
	if err != nil {
		return nil, err
	}
	o := xpkg.Options{RepoRoot: root, OutDir: out, Registry: c.Registry, Version: c.Version, Crossplane: c.Crossplane}
	return xpkg.Build(ctx, o, targets...)
}

type buildCmd struct{ common }

func (c *buildCmd) Run(ctx context.Context) error {
	built, err := c.build(ctx)
	for _, b := range built {
		_, _ = fmt.Fprintln(os.Stdout, b.File)
	}
	return err
}

type publishCmd struct{ common }

func (c *publishCmd) Run(ctx context.Context) error {
	built, err := c.build(ctx)
	if err != nil {
		return err
	}
	for _, b := range built {
		if err := xpkg.Push(ctx, b.File, b.Ref); err != nil {
			return err
		}
		_, _ = fmt.Fprintln(os.Stdout, b.Ref)
	}
	return nil
}

type cli struct {
	Build   buildCmd   `cmd:"" help:"Build the .xpkg files (with their runtime images) and the gateway image."`
	Publish publishCmd `cmd:"" help:"Build, then push every package and image to <registry>/<name>:<version>."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	k := kong.Parse(&cli{}, kong.Description("Build and publish redishttp's Crossplane packages without Docker."),
		kong.BindTo(ctx, (*context.Context)(nil)))
	k.FatalIfErrorf(k.Run())
}
