// Package version is the version redishttp's binaries were built as. Every
// binary answers --version and logs it when it starts.
package version
