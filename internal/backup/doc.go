// Package backup takes verified RDB snapshots of a tenant's Redis into an
// S3-compatible bucket and restores them into a new instance's data directory.
//
// A backup is one RDB snapshot streamed from Redis's replication protocol
// (SYNC, diskless), parsed on the way (key count, CRC64), hashed, optionally
// encrypted with age, uploaded with multipart, read back and compared, and
// only then described by a manifest next to it. Objects without a manifest
// are incomplete: never listed, never restored, removed after a day.
package backup
