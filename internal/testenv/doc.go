// Package testenv starts the real components our tests run against: redis-server
// on a free loopback port, and the pinned tools (crossplane CLI and core, etcd,
// kube-apiserver...) that hack/tools.sh builds into a cache outside the clone.
//
// Tools are found through REDISHTTP_TOOLS_BIN, a PATH-like list of directories
// that `make test` sets. A test that needs a tool is skipped when the list is not
// set, unless REDISHTTP_REQUIRE_TOOLS=1 (set by `make test` and CI), where a
// missing tool fails the test: CI never passes by skipping.
package testenv
