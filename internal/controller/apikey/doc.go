// Package apikey reconciles ApiKey managed resources: each ApiKey is a Redis
// ACL user with exactly the permissions its spec asks for, and a key that
// lives only in the ApiKey's connection Secret.
package apikey
