// Package gateway serves the Upstash REST protocol in front of one Redis:
// every request runs as the Redis ACL user its token names, so Redis itself
// decides what a token may do.
//
// # Identity
//
// A token names an ACL user and its key; the gateway keeps no key of its
// own and checks none: Redis does, by AUTH, on the connection the request's
// commands then run on.
//
// A connection that is not known to be authenticated as the request's
// identity gets RESET and AUTH <user> <key>, and the gateway reads both
// replies before it sends a command: RESET must answer exactly +RESET and
// AUTH exactly +OK, any other reply closes the connection. The commands
// are never pipelined behind an AUTH whose +OK was not read: after RESET,
// a connection is authenticated as Redis's default user when that user has
// no password (a bring-your-own Redis, or one whose default user lost its
// password at any time), and a refused AUTH would leave the commands
// behind it running as default. Waiting for the verdict makes a wrong key
// run nothing, whatever the default user's state, at the cost of one round
// trip per authentication. Authentications are rare on the hot path: a
// connection remembers the identity it authenticated as (a keyed hash of
// user and key, the key random per process) and when; the pool prefers an
// idle connection of the asking identity, and for VerifyTTL after its AUTH
// such a connection runs the identity's commands at once. So a key removed
// from a user (the end of a rotation's grace period) is refused at most
// VerifyTTL after the change, even though Redis keeps connections
// authenticated with a removed password; ACL DELUSER closes them outright,
// and the pool drops closed connections before use. Permission changes
// (key patterns, commands) apply at once: Redis checks them on every
// command. RESET and AUTH are no-auth commands no ACL rule can deny.
//
// # Replies
//
// Every reply is read by internal/resp with exact accounting: a connection
// goes back to the pool only at a reply boundary with nothing unread, so
// bytes a tenant wrote into its own values can never be read as the reply
// to another identity's command. A reply too large for its request is
// read and dropped whole (up to maxSkipBytes) or its connection is closed.
//
// # Memory
//
// The bodies and replies of all requests in flight share one bound of the
// process (WithMaxMemory), and so do the identities: whatever one token
// does, another must be served. An identity holds at most a quarter of
// it (and 64 KiB for its request's body), so no two identities ever hold
// more than half of it (and 128 KiB); a request reads at most a quarter
// (Limits.MaxReplyBytes is cut to it): a larger reply is a 400 naming that
// limit, never a 503 that no retry could end, and a token's requests
// beyond its share are 503s to retry. What three identities at their shares leave is kept for
// identities holding at most a sixteenth: however many identities read
// large replies at once, an identity reading up to a sixteenth (7.2 MiB in
// the composed 256 MiB pod) is served unless three others read from that
// reserve at the same moment. A quarter rather than --max-reply-bytes
// (64 MiB, most of the pod's 115 MiB) is the trade: the pod's largest
// value through the gateway is 28.8 MiB, raised with its memory limit,
// against two tokens taking every other token's memory.
//
// The pool of connections to Redis is shared the same way (shares): a
// token holds at most a quarter of it by default (its blocking commands,
// slow scripts and transactions in flight), and once three quarters are
// held, only tokens holding fewer than a sixteenth take more: a token's
// request beyond either waits for one of its own connections, then gets
// 429.
//
// # Failover
//
// The address served may move to another server (a failover moves an
// instance's master Service). A connection is reused only within the
// pool's generation it was dialled in; a connection that failed, or whose
// server HELLO says is no master after a reply refused a command as a
// replica would (READONLY, MASTERDOWN, LOADING), ends the generation: every
// connection dialled before is closed instead of reused. A single command
// so refused did not run and runs once more on a connection dialled after;
// nothing that may have run runs twice. HELLO is a no-auth command no ACL
// rule can deny, sent on the request's own authenticated connection after
// its replies were read (failover.go).
package gateway
