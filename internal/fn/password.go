package fn

import (
	"encoding/base64"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/password"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/resource/composite"
)

// passwords are 40 characters from crossplane-runtime's alphanumeric set:
// about 238 bits. Alphanumeric keeps a password safe in redis.conf, URLs and
// shell probes without any quoting.
var passwords = password.Settings{CharacterSet: password.Default.CharacterSet, Length: 40}

// A PasswordGenerator returns a new random password.
type PasswordGenerator func() (string, error)

// RandomPassword returns a new random password drawn with crypto/rand.
func RandomPassword() (string, error) { return passwords.Generate() }

// requirementConnectionSecret is the key under which the function asks
// Crossplane for a claim-mode XR's connection Secret, where Crossplane keeps
// the connection details (the password with them) the function returned.
const requirementConnectionSecret = "connection-secret"

// requireConnectionSecret asks Crossplane to send the XR's connection Secret,
// if it has one, on the next call. Only the Secret Crossplane names after the
// XR's UID (the Composition's writeConnectionSecretsToNamespace) is asked for,
// so no reference can make the function read another Secret.
func requireConnectionSecret(rsp *fnv1.RunFunctionResponse, xr *composite.Unstructured) {
	ref := xr.GetWriteConnectionSecretToReference()
	if ref == nil || ref.Namespace == "" || ref.Name == "" || ref.Name != string(xr.GetUID()) {
		return
	}
	require(rsp, requirementConnectionSecret, &fnv1.ResourceSelector{
		ApiVersion: "v1",
		Kind:       "Secret",
		Match:      &fnv1.ResourceSelector_MatchName{MatchName: ref.Name},
		Namespace:  &ref.Namespace,
	})
}

// existingPassword returns the instance's password from where the platform
// already holds it, and where that is. Functions are stateless and run on
// every reconcile: reusing the password is what keeps it stable, and a new one
// locks every app out. In order:
//
//  1. the auth Secret, as observed (an unusable password there is an error,
//     not silently replaced);
//  2. if that is gone (deleted by hand, or replaced by a GitOps tool), the
//     connection Secret: composed and observed in namespaced mode; in claim
//     mode the XR's, which Crossplane writes and the function requires by
//     name.
//
// It returns "" when none holds a usable password.
func existingPassword(req *fnv1.RunFunctionRequest, observed map[resource.Name]resource.ObservedComposed) (string, string, error) {
	if oc, ok := observed[nameAuthSecret]; ok {
		pw, err := secretPassword(oc.Resource.Object, contract.AuthPasswordKey)
		if err != nil {
			return "", "", err
		}
		if pw != "" {
			return pw, oc.Resource.GetName(), nil
		}
	}
	var fallbacks []map[string]any
	if oc, ok := observed[nameConnectionSecret]; ok {
		fallbacks = append(fallbacks, oc.Resource.Object)
	}
	if rs, ok, _ := request.GetRequiredResource(req, requirementConnectionSecret); ok {
		for _, r := range rs {
			fallbacks = append(fallbacks, r.Resource.Object)
		}
	}
	for _, obj := range fallbacks {
		// A connection Secret's password that is not usable is not ours to
		// refuse: fall through to a new one.
		if pw, err := secretPassword(obj, contract.KeyPassword); err == nil && pw != "" {
			name, _, _ := unstructured.NestedString(obj, "metadata", "name")
			return pw, name, nil
		}
	}
	return "", "", nil
}

// secretPassword returns a Secret's password, "" when the key is absent, or
// an error when it is not a password redis.conf can hold.
func secretPassword(secret map[string]any, key string) (string, error) {
	name, _, _ := unstructured.NestedString(secret, "metadata", "name")
	enc, _, _ := unstructured.NestedString(secret, "data", key)
	if enc == "" {
		return "", nil
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", fmt.Errorf("cannot decode the password in Secret %q", name)
	}
	pw := string(raw)
	if !safePassword(pw) {
		return "", fmt.Errorf("the password in Secret %q is not usable in redis.conf (it must be at least 32 letters and digits); delete the Secret's %q key to generate a new one", name, key)
	}
	return pw, nil
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
