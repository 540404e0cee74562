package fn

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
)

// quantityFields are the spec fields that hold Kubernetes quantities, in the
// order their errors are reported.
var quantityFields = [][]string{
	{"cpu", "limit"}, {"cpu", "request"},
	{"http", "resources", "limits", "cpu"}, {"http", "resources", "limits", "memory"},
	{"http", "resources", "requests", "cpu"}, {"http", "resources", "requests", "memory"},
	{"memory"}, {"storage", "size"},
}

const quantityExample = "a Kubernetes quantity such as 256Mi, 1Gi or 500m"

// decodeSpec decodes an instance's spec into the API type. A field of the
// wrong JSON type, or a quantity that is not one, is a field error naming it.
func decodeSpec(spec map[string]any) (*v1alpha1.RedisHttpInstanceSpec, field.ErrorList) {
	root := field.NewPath("spec")
	// resource.Quantity's own decoding errors name no field, so check the
	// quantities first, each decoded as the whole spec will be.
	spec, errs := checkQuantities(spec, root)
	if len(errs) > 0 {
		return nil, errs
	}
	in := &v1alpha1.RedisHttpInstanceSpec{}
	b, err := json.Marshal(spec)
	if err == nil {
		err = json.Unmarshal(b, in)
	}
	if err != nil {
		return nil, field.ErrorList{decodeError(root, err)}
	}
	return in, nil
}

// checkQuantities returns a field error for every quantity field that does
// not decode as a resource.Quantity, whether a JSON string or number (the
// schema's int-or-string). An empty string in an optional field means its
// default, as it did before the schema had a pattern there; the spec returned
// leaves such fields out.
func checkQuantities(spec map[string]any, root *field.Path) (map[string]any, field.ErrorList) {
	var errs field.ErrorList
	for _, f := range quantityFields {
		parent, v := spec, any(nil)
		for i, k := range f {
			if i < len(f)-1 {
				parent, _ = parent[k].(map[string]any)
				continue
			}
			v = parent[k]
		}
		path := root.Child(f[0], f[1:]...)
		switch t := v.(type) {
		case nil:
			continue
		case string:
			if t == "" && len(f) > 1 {
				spec = without(spec, f)
				continue
			}
		case float64, int64, int:
		default:
			errs = append(errs, field.Invalid(path, v, "must be a Kubernetes quantity such as 256Mi"))
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			errs = append(errs, field.Invalid(path, v, "must be "+quantityExample))
			continue
		}
		if msg := quantitySize(strings.Trim(string(b), `"`)); msg != "" {
			errs = append(errs, field.Invalid(path, shown(strings.Trim(string(b), `"`)), msg))
			continue
		}
		if err := json.Unmarshal(b, &resource.Quantity{}); err != nil {
			errs = append(errs, field.Invalid(path, v, "must be "+quantityExample))
		}
	}
	return spec, errs
}

// maxQuantityLength bounds a quantity's text, and exponentRE finds a
// decimal exponent (1e3, 2.5E+6; not the exa suffix E or Ei).
const maxQuantityLength = 64

var exponentRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][+-]?([0-9]+)`)

// quantitySize refuses quantities whose parsing alone would cost the shared
// function unbounded time and memory: the schema's pattern admits
// "1e999999999", which resource.ParseQuantity expands digit by digit
// (minutes of CPU and gigabytes, measured). No sane quantity has more than 64
// characters or an exponent of more than two digits.
func quantitySize(s string) string {
	if len(s) > maxQuantityLength {
		return fmt.Sprintf("must be a quantity of at most %d characters", maxQuantityLength)
	}
	if m := exponentRE.FindStringSubmatch(s); m != nil && len(strings.TrimLeft(m[3], "0")) > 2 {
		return "must be a quantity with an exponent of at most two digits, such as 1e9"
	}
	return ""
}

// without returns spec without the field at path, copying only the maps on
// the way to it.
func without(spec map[string]any, path []string) map[string]any {
	out := maps.Clone(spec)
	if len(path) == 1 {
		delete(out, path[0])
		return out
	}
	child, _ := out[path[0]].(map[string]any)
	out[path[0]] = without(child, path[1:])
	return out
}

// decodeError turns a JSON decoding error into a field error a tenant can act
// on: which field, and what it should have been.
func decodeError(root *field.Path, err error) *field.Error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" {
		return field.Invalid(root, "", "cannot decode the instance's spec: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	parts := strings.Split(te.Field, ".")
	return field.Invalid(root.Child(parts[0], parts[1:]...), "a JSON "+te.Value, "must be "+jsonKind(te.Type.Kind().String()))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice":
		return "a list"
	default:
		return "a number"
	}
}
