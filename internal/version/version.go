package version

import (
	"fmt"
	"reflect"

	"github.com/alecthomas/kong"
)

// Version is stamped at build time with LDFlag: make build (internal/xpkg)
// and cluster/images/Dockerfile stamp the package version. A binary built
// without it says so.
var Version = "devel"

// LDFlag is the -ldflags argument that stamps v into a binary.
func LDFlag(v string) string {
	return fmt.Sprintf("-X %s.Version=%s", reflect.TypeFor[Flag]().PkgPath(), v)
}

// A Flag prints Version and exits, as a --version flag of a kong CLI:
//
//	Version version.Flag `help:"Print the version and exit."`
type Flag bool

// BeforeReset prints Version and exits before kong checks anything else on
// the command line, as kong.VersionFlag does.
func (Flag) BeforeReset(app *kong.Kong) error {
	_, _ = fmt.Fprintln(app.Stdout, Version)
	app.Exit(0)
	return nil
}
