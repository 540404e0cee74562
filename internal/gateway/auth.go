package gateway

import (
	"net/http"
	"strings"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// tokenOf returns the request's REST token: "Authorization: Bearer <token>"
// or, when there is no such header, the _token query parameter.
func tokenOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	for _, kv := range queryPairs(r.URL.RawQuery) {
		if kv[0] == "_token" {
			return kv[1]
		}
	}
	return ""
}

// identityOf returns the identity of the request's token. ok is false for a
// missing or malformed token.
func (s *Server) identityOf(r *http.Request) (Identity, bool) {
	user, key, err := contract.ParseToken(tokenOf(r))
	if err != nil {
		return Identity{}, false
	}
	return s.redis.Identity(user, key), true
}
