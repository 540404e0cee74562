package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/ai-decenter/redishttp/internal/contract"
)

var bearer = []byte("Bearer")

// tokenOf returns a request's REST token from its Authorization header
// ("Bearer <token>") or, when there is no such header, from the _token
// parameter of its raw query.
func tokenOf(authorization, rawQuery []byte) string {
	if len(authorization) > 0 {
		scheme, tok, ok := bytes.Cut(authorization, []byte(" "))
		if ok && bytes.EqualFold(scheme, bearer) {
			return string(bytes.TrimSpace(tok))
		}
		return ""
	}
	for _, kv := range queryPairs(string(rawQuery)) {
		if kv[0] == "_token" {
			return kv[1]
		}
	}
	return ""
}

// identityOf returns the identity of the request's token. ok is false for a
// missing or malformed token.
func (s *Server) identityOf(ctx *fasthttp.RequestCtx) (Identity, bool) {
	user, key, err := contract.ParseToken(tokenOf(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), ctx.URI().QueryString()))
	if err != nil {
		return Identity{}, false
	}
	return s.redis.Identity(user, key), true
}

// hasToken reports whether a request's header carries a well-formed token,
// before its body is read (and its URI parsed): the token identityOf
// finds. The query ends at a fragment, as fasthttp parses it: a token
// before "#x" was refused here and its body dropped unread, then the
// request ran without it.
func hasToken(h *fasthttp.RequestHeader) bool {
	uri, _, _ := bytes.Cut(h.RequestURI(), []byte("#"))
	_, query, _ := bytes.Cut(uri, []byte("?"))
	_, _, err := contract.ParseToken(tokenOf(h.Peek(fasthttp.HeaderAuthorization), query))
	return err == nil
}
