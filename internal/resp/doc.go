// Package resp reads RESP2, the Redis protocol, from a peer that is not
// trusted: a tenant controls its data and its Lua, and may even run the
// server. It is the one reader of the repository: the gateway reads its
// replies with a Reader, the provider's client checks every byte go-redis
// reads with a Decoder.
//
// Exact accounting is the point. A Decoder either ends a reply (a value, or
// ErrTooLarge for a reply it read and dropped whole) having consumed
// exactly that reply's bytes, or it fails for good: after any other error
// the stream is somewhere inside a reply and the connection must be closed,
// never reused. A connection is reusable only at a reply boundary with
// nothing buffered past it (Reader.Clean).
//
// Lengths are the peer's word: every announced length is checked against
// Limits and the budget before any arithmetic or allocation.
package resp
