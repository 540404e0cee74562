package gateway

import (
	"bytes"
	"time"
)

// commandName returns cmd's name in upper case without allocating for
// names up to 32 bytes; longer names (no Redis command) come back as is.
func commandName(buf *[32]byte, cmd [][]byte) string {
	if len(cmd) == 0 {
		return ""
	}
	n := cmd[0]
	if len(n) > len(buf) {
		return string(n)
	}
	for i, c := range n {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	return string(buf[:len(n)])
}

// errName refuses a command name, or a container command's subcommand,
// that Redis would not match as written (see plainName).
var errName = commandError("ERR command names and subcommands are ASCII letters, digits, '.', '_' and '-' only")

// plainName reports whether Redis matches name as it is written. Redis
// finds a command (and a container's subcommand) by hashing all of its
// bytes but compares the names in the hash bucket with strcasecmp, which
// stops at a NUL: "SELECT\x00<n>" runs SELECT for the n whose hash falls in
// SELECT's bucket, and the command procedures compare their keywords the
// same way ("CLIENT" "REPLY\x00<n>"). So every name the gateway decides on
// (refused, stateful, blocking) must be the name Redis runs: only the
// bytes real command names are made of pass, which excludes NUL. '|'
// (ACL's "config|get") never names a command in a request.
func plainName(name []byte) bool {
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// containers are Redis 7.0's commands with subcommands (COMMAND's 10th
// field): Redis looks their second argument up as a command name.
var containers = map[string]bool{
	"ACL": true, "CLIENT": true, "CLUSTER": true, "COMMAND": true, "CONFIG": true, "FUNCTION": true,
	"LATENCY": true, "MEMORY": true, "MODULE": true, "OBJECT": true, "PUBSUB": true, "SCRIPT": true,
	"SLOWLOG": true, "XGROUP": true, "XINFO": true,
}

// A commandError is a refusal by the gateway, sent as Redis's own errors
// are: {"error": "ERR ..."} with 400.
type commandError string

func (e commandError) Error() string { return string(e) }

// Policy decides what the gateway runs. A command that would leave a pooled
// connection in a state the next request would inherit, or that the
// request/reply model of HTTP cannot carry, is refused:
//   - SUBSCRIBE and friends, MONITOR, SYNC/PSYNC/REPLCONF: their replies
//     never end (use /subscribe, /psubscribe);
//   - AUTH, HELLO, RESET, QUIT and CLIENT REPLY: the gateway owns the
//     connection's identity, protocol and replies; a request runs as its
//     token's user only;
//   - CLIENT TRACKING and CLIENT CACHING: over RESP2 tracking only sends
//     invalidations to another connection (REDIRECT <id>), which may be
//     another identity's /subscribe stream (messages forged into it) or
//     the caller's own with BCAST (the names of every key anyone writes);
//   - a name or subcommand Redis would not match as written (plainName).
//
// Blocking commands are bounded, not refused: a timeout of 0 (forever) or
// above MaxBlock is replaced by MaxBlock, so BLPOP k 0 answers null after
// MaxBlock like any timed-out BLPOP (see timeout.go for the forms of a
// timeout taken). This covers BLPOP, BRPOP, BRPOPLPUSH,
// BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, XREAD/XREADGROUP BLOCK, WAIT
// and WAITAOF. The request deadline bounds a pipeline of them as a whole.
// A request with a blocking command runs alone on its connection, never
// batched with other requests (see Redis.Do).
type Policy struct {
	MaxBlock time.Duration
}

// check refuses or rewrites cmd in place, and returns how it may share a
// connection: ModeStateful for a command that may leave state on the
// connection (MULTI, SELECT, WATCH...), ModeAlone for a blocking one.
func (p Policy) check(cmd [][]byte) (Mode, error) {
	if len(cmd) == 0 || len(cmd[0]) == 0 {
		return ModeShared, commandError("ERR empty command")
	}
	var buf [32]byte
	name := commandName(&buf, cmd)
	if !plainName(cmd[0]) || (containers[name] && len(cmd) > 1 && !plainName(cmd[1])) {
		return ModeShared, errName
	}
	switch name {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE":
		return ModeShared, commandError("ERR " + name + " is not supported here: use the /subscribe or /psubscribe endpoint")
	case "MONITOR", "SYNC", "PSYNC", "REPLCONF", "AUTH", "HELLO", "RESET", "QUIT":
		return ModeShared, commandError("ERR " + name + " is not supported over HTTP")
	case "CLIENT":
		if len(cmd) > 1 {
			for _, sub := range []string{"REPLY", "TRACKING", "CACHING"} {
				if bytes.EqualFold(cmd[1], []byte(sub)) {
					return ModeShared, commandError("ERR CLIENT " + sub + " is not supported over HTTP")
				}
			}
		}
		return ModeStateful, nil
	case "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "READONLY", "READWRITE":
		return ModeStateful, nil
	case "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BZPOPMIN", "BZPOPMAX":
		if len(cmd) > 2 {
			return ModeAlone, p.boundSeconds(cmd, len(cmd)-1)
		}
		return ModeAlone, nil
	case "BLMPOP", "BZMPOP":
		if len(cmd) > 1 {
			return ModeAlone, p.boundSeconds(cmd, 1)
		}
		return ModeAlone, nil
	case "WAIT":
		if len(cmd) == 3 {
			return ModeAlone, p.boundMillis(cmd, 2)
		}
		return ModeAlone, nil
	case "WAITAOF":
		if len(cmd) == 4 {
			return ModeAlone, p.boundMillis(cmd, 3)
		}
		return ModeAlone, nil
	case "XREAD", "XREADGROUP":
		return p.boundXRead(cmd)
	}
	return ModeShared, nil
}

// inTransaction refuses the commands that would break /multi-exec's own
// MULTI ... EXEC: a nested MULTI or a WATCH answers an error that EXEC's
// reply has no place for, and an EXEC or DISCARD would end the transaction
// early, so that the gateway's EXEC fails after the commands ran.
func inTransaction(cmd [][]byte) error {
	var buf [32]byte
	switch name := commandName(&buf, cmd); name {
	case "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH":
		return commandError("ERR " + name + " is not allowed in /multi-exec: the gateway wraps the commands in MULTI and EXEC")
	}
	return nil
}
