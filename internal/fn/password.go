package fn

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math/big"

	"github.com/crossplane/function-sdk-go/resource"
)

// passwordLength is the length of generated passwords: 40 characters from a
// 62-letter alphabet is about 238 bits.
const passwordLength = 40

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// A PasswordGenerator returns a new random password.
type PasswordGenerator func() (string, error)

// RandomPassword returns passwordLength characters drawn uniformly from an
// alphanumeric alphabet with crypto/rand. Alphanumeric keeps the password
// safe in redis.conf, URLs and shell probes without any quoting.
func RandomPassword() (string, error) {
	b := make([]byte, passwordLength)
	size := big.NewInt(int64(len(alphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, size)
		if err != nil {
			return "", fmt.Errorf("cannot read random bytes: %w", err)
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}

// observedPassword returns the password held by the observed auth Secret, if
// there is one. Functions are stateless and run on every reconcile: reusing
// the observed password is what keeps it stable.
func observedPassword(observed map[resource.Name]resource.ObservedComposed) (string, bool, error) {
	oc, ok := observed[nameAuthSecret]
	if !ok {
		return "", false, nil
	}
	enc, _ := oc.Resource.GetString("data." + passwordKey)
	if enc == "" {
		return "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false, fmt.Errorf("cannot decode the password in Secret %q", oc.Resource.GetName())
	}
	pw := string(raw)
	if !safePassword(pw) {
		return "", false, fmt.Errorf("the password in Secret %q is not usable in redis.conf (it must be at least 32 letters and digits); delete the Secret's %q key to generate a new one", oc.Resource.GetName(), passwordKey)
	}
	return pw, true, nil
}

func safePassword(pw string) bool {
	if len(pw) < 32 || len(pw) > 512 {
		return false
	}
	for i := range len(pw) {
		c := pw[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
