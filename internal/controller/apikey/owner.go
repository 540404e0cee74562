package apikey

import (
	"slices"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
)

// owned reports whether an existing ACL user belongs to the ApiKey: it
// accepts the key of the ApiKey's Secret, or has the ApiKey's default name
// (namespace, name and UID make it the ApiKey's own), or the ApiKey recorded
// managing it under this name before. A user that fails all three was made
// by someone else, say another ApiKey whose external name is set to ours.
func owned(cr *v1alpha1.ApiKey, u *redis.User, key string) bool {
	name := meta.GetExternalName(cr)
	switch {
	case key != "" && slices.Contains(u.PasswordHashes, hash(key)):
		return true
	case name == ExternalName(cr.GetNamespace(), cr.GetName(), string(cr.GetUID())):
		return true
	default:
		return cr.Status.AtProvider.Username == name
	}
}

// errTakeover is the error for an ACL user the ApiKey does not own.
func errTakeover(name string) error {
	return errors.Errorf("cannot manage ACL user %q: it exists and accepts no key of this ApiKey; another ApiKey or an administrator owns it, so choose another external name (or delete the user)", name)
}
