package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/ai-decenter/redishttp/internal/contract"
)

var bearer = []byte("Bearer")

// tokenOf returns the request's REST token: "Authorization: Bearer <token>"
// or, when there is no such header, the _token query parameter.
func tokenOf(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(h) > 0 {
		scheme, tok, ok := bytes.Cut(h, []byte(" "))
		if ok && bytes.EqualFold(scheme, bearer) {
			return string(bytes.TrimSpace(tok))
		}
		return ""
	}
	for _, kv := range queryPairs(string(ctx.URI().QueryString())) {
		if kv[0] == "_token" {
			return kv[1]
		}
	}
	return ""
}

// identityOf returns the identity of the request's token. ok is false for a
// missing or malformed token.
func (s *Server) identityOf(ctx *fasthttp.RequestCtx) (Identity, bool) {
	user, key, err := contract.ParseToken(tokenOf(ctx))
	if err != nil {
		return Identity{}, false
	}
	return s.redis.Identity(user, key), true
}
