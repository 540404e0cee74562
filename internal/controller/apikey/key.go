package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/url"
	"slices"

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

// details returns what an app needs to use its key: the Redis URL and its
// parts, and, when the Redis has an HTTP gateway, the gateway's URLs and the
// key's REST token (a rotation changes it, the grace period keeps the old one
// working, deletion revokes it: the gateway authenticates it as the ACL user).
// The REST keys the Secret holds (held) of a gateway that went away are
// removed from the Secret: their value is nil, which the connection publisher's merge patch deletes.
func details(user, key string, a admin, held []string) managed.ConnectionDetails {
	u := url.URL{
		Scheme: "redis",
		User:   url.UserPassword(user, key),
		Host:   net.JoinHostPort(a.endpoint, a.port),
		Path:   "/0",
	}
	d := managed.ConnectionDetails{
		contract.KeyUsername: []byte(user),
		contract.KeyPassword: []byte(key),
		contract.KeyEndpoint: []byte(a.endpoint),
		contract.KeyPort:     []byte(a.port),
		contract.KeyURL:      []byte(u.String()),
	}
	rest := map[string]string{}
	if a.restURL != "" {
		rest[contract.KeyRESTURL] = a.restURL
		rest[contract.KeyRESTToken] = contract.Token(user, key)
		if a.restURLInCluster != "" {
			rest[contract.KeyRESTURLInCluster] = a.restURLInCluster
		}
	}
	for _, k := range restKeys {
		if v, ok := rest[k]; ok {
			d[k] = []byte(v)
			continue
		}
		if slices.Contains(held, k) {
			d[k] = nil
		}
	}
	return d
}

// restKeys are the connection Secret's keys of an HTTP gateway.
var restKeys = []string{contract.KeyRESTURL, contract.KeyRESTToken, contract.KeyRESTURLInCluster}
