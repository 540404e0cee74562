// Package redis is the provider's thin client for the Redis ACL: it creates,
// reads and deletes ACL users with an admin connection, and serves reads from
// a shared, periodically refreshed ACL LIST snapshot so that observing many
// keys on one Redis costs one ACL LIST per refresh, not one ACL GETUSER per key
// per poll.
package redis
