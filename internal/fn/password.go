package fn

import (
	"encoding/base64"
	"fmt"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/password"
	"github.com/crossplane/function-sdk-go/resource"
)

// passwords are 40 characters from crossplane-runtime's alphanumeric set:
// about 238 bits. Alphanumeric keeps a password safe in redis.conf, URLs and
// shell probes without any quoting.
var passwords = password.Settings{CharacterSet: password.Default.CharacterSet, Length: 40}

// A PasswordGenerator returns a new random password.
type PasswordGenerator func() (string, error)

// RandomPassword returns a new random password drawn with crypto/rand.
func RandomPassword() (string, error) { return passwords.Generate() }

// observedPassword returns the password held by the observed auth Secret, if
// there is one. Functions are stateless and run on every reconcile: reusing
// the observed password is what keeps it stable.
func observedPassword(observed map[resource.Name]resource.ObservedComposed) (string, bool, error) {
	oc, ok := observed[nameAuthSecret]
	if !ok {
		return "", false, nil
	}
	enc, _ := oc.Resource.GetString("data." + contract.AuthPasswordKey)
	if enc == "" {
		return "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false, fmt.Errorf("cannot decode the password in Secret %q", oc.Resource.GetName())
	}
	pw := string(raw)
	if !safePassword(pw) {
		return "", false, fmt.Errorf("the password in Secret %q is not usable in redis.conf (it must be at least 32 letters and digits); delete the Secret's %q key to generate a new one", oc.Resource.GetName(), contract.AuthPasswordKey)
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
