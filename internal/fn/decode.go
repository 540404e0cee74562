package fn

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
)

// quantityFields are the spec fields that hold Kubernetes quantities.
var quantityFields = map[string]bool{"memory": true, "cpu.request": true, "cpu.limit": true, "storage.size": true}

// decodeSpec decodes an instance's spec into the API type. A field of the
// wrong JSON type is a field error naming it and the type it should have.
func decodeSpec(spec map[string]any) (*v1alpha1.RedisHttpInstanceSpec, field.ErrorList) {
	root := field.NewPath("spec")
	// IntOrString's own decoding errors name no field, so check the
	// quantities' JSON types first.
	if errs := quantityTypes(spec, root); len(errs) > 0 {
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

// decodeError turns a JSON decoding error into a field error a tenant can act
// on: which field, and what it should have been.
func decodeError(root *field.Path, err error) *field.Error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" {
		return field.Invalid(root, "", "cannot decode the instance's spec: "+strings.TrimPrefix(err.Error(), "json: "))
	}
	want := jsonKind(te.Type.Kind().String())
	if quantityFields[te.Field] {
		want = "a Kubernetes quantity such as 256Mi"
	}
	parts := strings.Split(te.Field, ".")
	return field.Invalid(root.Child(parts[0], parts[1:]...), "a JSON "+te.Value, "must be "+want)
}

func quantityTypes(spec map[string]any, root *field.Path) field.ErrorList {
	var errs field.ErrorList
	for f := range quantityFields {
		parts := strings.Split(f, ".")
		var v any = spec
		for _, p := range parts {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[p]
		}
		switch v.(type) {
		case nil, string, float64, int64, int:
		default:
			errs = append(errs, field.Invalid(root.Child(parts[0], parts[1:]...), v, "must be a Kubernetes quantity such as 256Mi"))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
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
