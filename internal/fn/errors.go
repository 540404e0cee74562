package fn

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func asTypeError(err error, te **json.UnmarshalTypeError) bool { return errors.As(err, te) }

// invalidSpecMessage joins field errors into one deterministic line a tenant
// can act on.
func invalidSpecMessage(kind, name string, errs field.ErrorList) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	sort.Strings(msgs)
	return "invalid " + kind + " " + quote(name) + ": " + strings.Join(msgs, "; ")
}

func quote(s string) string { return `"` + s + `"` }
