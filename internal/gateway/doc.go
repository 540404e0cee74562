// Package gateway serves the Upstash REST protocol in front of one Redis:
// every request runs as the Redis ACL user its token names, so Redis itself
// decides what a token may do.
package gateway
