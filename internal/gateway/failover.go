package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"

	"github.com/ai-decenter/redishttp/internal/resp"
)

// The gateway serves the address of a master (the Service of an instance
// with replicas routes to the current master only). A failover moves the
// address, not the connections already open: pooled connections keep
// leading to the old master, which answers writes with READONLY once it is
// a replica, or to a server that is gone. The pool follows (pool.moved):
//   - a connection that failed (reset, end of stream, no answer in time)
//     ends the pool's generation: every connection dialled before it is
//     closed rather than reused;
//   - a reply saying the server is no master (notMaster) is checked on the
//     same connection with HELLO, whose role field a tenant cannot forge (a
//     script returns any error it likes, and HELLO is a no-auth command no
//     ACL rule can deny): a server that is no master, or a connection lost
//     meanwhile, ends the generation too, and its connection is not
//     reused; an answer that is no role (a HELLO queued in a transaction
//     the request opened) ends nothing but that connection;
//   - a request of one command refused that way did not run: it runs once
//     more, on a connection dialled after the refusal (retryable). A
//     pipeline, a transaction or a script may have run in part (a script's
//     commands before its refused write did), so it is never run again:
//     its client sees the refusal and decides.
//
// A generation ends at most every minGeneration, so an address that keeps
// leading to a replica (a master label left on a demoted pod) costs the
// pool's size in redials per period, not one per request.

// notMasterCodes are the error codes of a server that is no writable
// master: a replica refusing a write, a replica refusing stale reads while
// its master is down, a server loading its data (it restarted).
var notMasterCodes = [][]byte{[]byte("READONLY "), []byte("MASTERDOWN "), []byte("LOADING ")}

// notMaster reports whether v is an error reply of a server that is no
// writable master.
func notMaster(v resp.Value) bool {
	if !v.IsError() {
		return false
	}
	for _, c := range notMasterCodes {
		if bytes.HasPrefix(v.Str, c) {
			return true
		}
	}
	return false
}

// lost reports whether err, a failed read, means the connection or its
// server is gone (rather than a reply the gateway refused).
func lost(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}

var cmdHello = []byte("HELLO")

// follow is called with c clean after a round: when a reply of live said
// its server is no master, it asks the server's role with HELLO and, when
// it is not a master, tells the pool (marking the calls that may run again)
// and reports that c is not to be reused. It reports whether c may be used
// again.
func (r *Redis) follow(c *conn, live []*call) bool {
	var refused []*call
	for _, cl := range live {
		if slices.ContainsFunc(cl.replies, notMaster) {
			refused = append(refused, cl)
		}
	}
	if len(refused) == 0 {
		return true
	}
	master, err := r.role(c)
	switch {
	case err == nil && master:
		// A master loading its data after a restart, or a script's
		// own error: the address has not moved.
		return c.rd.Clean()
	case err != nil && !lost(err):
		// An answer that is no role: HELLO queued in a transaction the
		// request left open after a script's own READONLY. Nothing
		// says the server moved; c, in a state unknown, is not reused.
		return false
	}
	if r.pool.moved(c, r.now()) {
		for _, cl := range refused {
			cl.moved = true
		}
	}
	return false
}

// role reports whether c's server says it is a master (HELLO's role).
func (r *Redis) role(c *conn) (bool, error) {
	c.wb = resp.AppendCommand(c.wb[:0], cmdHello)
	if _, err := c.nc.Write(c.wb); err != nil {
		return false, err
	}
	c.rd.Start(authBudget)
	c.rd.Discard = 0
	c.rd.Reserve = nil
	v, err := c.rd.Read()
	if err != nil {
		return false, err
	}
	if v.Kind != resp.KindArray {
		return false, errUnexpectedReply
	}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		if string(v.Elems[i].Str) == "role" {
			return string(v.Elems[i+1].Str) == "master", nil
		}
	}
	return false, errUnexpectedReply
}

// scriptCommands run a tenant's code: their refusal does not prove that
// nothing ran.
var scriptCommands = []string{"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}

// retryable reports whether cl, which ran, may run once more: it is one
// command, not a script, which its server refused as no master, and the
// pool dials anew since (see follow).
func retryable(cl *call) bool {
	if cl.err != nil || !cl.moved || len(cl.cmds) != 1 || len(cl.replies) != 1 || !notMaster(cl.replies[0]) {
		return false
	}
	name := cl.cmds[0][0]
	for _, s := range scriptCommands {
		if bytes.EqualFold(name, []byte(s)) {
			return false
		}
	}
	return true
}
