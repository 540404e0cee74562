package contract

import (
	"encoding/base64"
	"errors"
	"strings"
)

// ErrMalformedToken is returned for a REST token that is not the encoding of
// "<username>:<key>".
var ErrMalformedToken = errors.New("malformed token")

// Token is the REST token of an ACL user: the unpadded base64url (RFC 4648
// section 5) encoding of "<username>:<key>". The instance's own token is
// Token(AdminUser, password).
func Token(username, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(username + ":" + key))
}

// ParseToken returns the username and key a REST token carries: the username
// is everything before the first ':'. Neither may be empty.
func ParseToken(token string) (username, key string, err error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", "", ErrMalformedToken
	}
	username, key, ok := strings.Cut(string(b), ":")
	if !ok || username == "" || key == "" {
		return "", "", ErrMalformedToken
	}
	return username, key, nil
}
