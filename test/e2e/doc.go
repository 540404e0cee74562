// Package e2e proves the real install path end to end, on the local control
// plane of package cluster/local: Crossplane installs our packages, a tenant
// writes a RedisHttpInstance, and their app gets a connection Secret that opens
// a running Redis; ApiKeys give apps scoped keys to it. The tests carry the
// build tag e2e and run with `make e2e`.
package e2e
