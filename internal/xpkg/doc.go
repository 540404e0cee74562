// Package xpkg builds this project's Crossplane packages without Docker: it
// compiles the function and provider as static Go binaries, assembles their
// runtime images in Go (one reproducible layer, non-root user), embeds them with
// `crossplane xpkg build`, and pushes packages to an OCI registry.
//
// The registry the packages live in is a build parameter: the dependencies a
// Configuration declares are rewritten to <registry>/<name> when it is built, so
// the same package roots resolve from a public registry or from the local one
// the development control plane runs.
package xpkg
