package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/url"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
)

// KeyPrefix starts every key, so that a leaked key is recognisable (secret
// scanners, logs) as a redishttp key.
const KeyPrefix = "rhk_"

// newKey returns a new key: the prefix and 32 bytes from crypto/rand, base64url
// without padding (47 characters, URL-safe).
func newKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", errors.Wrap(err, "cannot generate a key")
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// hash returns the SHA-256 hex digest of a key, the form in which Redis is
// told about it (ACL SETUSER ... #<hex>).
func hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// details returns what an app needs to use its key.
func details(user, key, endpoint, port string) managed.ConnectionDetails {
	u := url.URL{
		Scheme: "redis",
		User:   url.UserPassword(user, key),
		Host:   net.JoinHostPort(endpoint, port),
		Path:   "/0",
	}
	return managed.ConnectionDetails{
		contract.KeyUsername: []byte(user),
		contract.KeyPassword: []byte(key),
		contract.KeyEndpoint: []byte(endpoint),
		contract.KeyPort:     []byte(port),
		contract.KeyURL:      []byte(u.String()),
	}
}
