package fn

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
)

const quantityExample = "a Kubernetes quantity such as 256Mi, 1Gi or 500m"

// decodeSpec converts an instance's spec into the API type, typed all the
// way: every field params is built from is a field of
// v1alpha1.RedisHttpInstanceSpec. A field of the wrong JSON type, a number
// that does not fit its field, or a quantity that is not one, is a field
// error naming it.
func decodeSpec(spec map[string]any) (*v1alpha1.RedisHttpInstanceSpec, field.ErrorList) {
	root := field.NewPath("spec")
	// The converter's errors name no field, a quantity's own decoding errors
	// neither, and the converter wraps an integer that does not fit its field
	// (4294967297 replicas would be 1): check those fields first.
	spec, errs := checkNumbers(spec, root)
	if len(errs) > 0 {
		return nil, errs
	}
	in := &v1alpha1.RedisHttpInstanceSpec{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, in); err != nil {
		return nil, field.ErrorList{decodeError(root, spec, err)}
	}
	return in, nil
}

// A numberField is a spec field holding a number: a resource.Quantity
// (the schema's int-or-string) or an integer of bits.
type numberField struct {
	path     []string
	quantity bool
	bits     int
	signed   bool
}

// numberFields are every numberField of the spec, found in the API type
// itself so that a field added there is checked too, sorted by path: the
// order their errors are reported in.
var numberFields = findNumberFields(reflect.TypeFor[v1alpha1.RedisHttpInstanceSpec](), nil)

var quantityType = reflect.TypeFor[resource.Quantity]()

func findNumberFields(t reflect.Type, path []string) []numberField {
	var out []numberField
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		p := append(slices.Clip(path), name)
		switch {
		case ft == quantityType:
			out = append(out, numberField{path: p, quantity: true})
		case ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Int64:
			out = append(out, numberField{path: p, bits: ft.Bits(), signed: true})
		case ft.Kind() >= reflect.Uint && ft.Kind() <= reflect.Uint64:
			out = append(out, numberField{path: p, bits: ft.Bits()})
		case ft.Kind() == reflect.Struct:
			out = append(out, findNumberFields(ft, p)...)
		}
	}
	slices.SortFunc(out, func(a, b numberField) int { return slices.Compare(a.path, b.path) })
	return out
}

// checkNumbers returns a field error for every number field whose value does
// not fit it. An empty string in an optional quantity means its default, as
// it did before the schema had a pattern there; the spec returned leaves such
// fields out.
func checkNumbers(spec map[string]any, root *field.Path) (map[string]any, field.ErrorList) {
	var errs field.ErrorList
	for _, f := range numberFields {
		parent, v := spec, any(nil)
		for i, k := range f.path {
			if i < len(f.path)-1 {
				parent, _ = parent[k].(map[string]any)
				continue
			}
			v = parent[k]
		}
		if v == nil {
			continue
		}
		path := root.Child(f.path[0], f.path[1:]...)
		if !f.quantity {
			if err := checkInteger(path, v, f.bits, f.signed); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if s, ok := v.(string); ok && s == "" && len(f.path) > 1 {
			spec = without(spec, f.path)
			continue
		}
		if err := checkQuantity(path, v); err != nil {
			errs = append(errs, err)
		}
	}
	return spec, errs
}

// checkInteger refuses a number that is not whole or does not fit an integer
// of bits. Other JSON types are left to the converter.
func checkInteger(path *field.Path, v any, bits int, signed bool) *field.Error {
	var f float64
	switch t := v.(type) {
	case float64:
		f = t
	case int64:
		f = float64(t)
	case int:
		f = float64(t)
	default:
		return nil
	}
	lo, hi := 0.0, math.Exp2(float64(bits))
	if signed {
		lo, hi = -hi/2, hi/2
	}
	if f != math.Trunc(f) || f < lo || f >= hi {
		return field.Invalid(path, strconv.FormatFloat(f, 'f', -1, 64), fmt.Sprintf("must be a whole number from %.0f to %.0f", lo, hi-1))
	}
	return nil
}

// checkQuantity refuses a value that does not decode as a resource.Quantity,
// whether a JSON string or number (the schema's int-or-string).
func checkQuantity(path *field.Path, v any) *field.Error {
	switch v.(type) {
	case string, float64, int64, int:
	default:
		return field.Invalid(path, v, "must be a Kubernetes quantity such as 256Mi")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return field.Invalid(path, v, "must be "+quantityExample)
	}
	s := strings.Trim(string(b), `"`)
	if msg := quantitySize(s); msg != "" {
		return field.Invalid(path, shown(s), msg)
	}
	if err := json.Unmarshal(b, &resource.Quantity{}); err != nil {
		return field.Invalid(path, v, "must be "+quantityExample)
	}
	return nil
}

// maxQuantityLength bounds a quantity's text, and exponentRE finds a
// decimal exponent (1e3, 2.5E+6; not the exa suffix E or Ei).
const maxQuantityLength = 64

var exponentRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][+-]?([0-9]+)`)

// quantitySize refuses quantities whose parsing alone would cost the shared
// function unbounded time and memory: the schema's pattern admits
// "1e999999999", which resource.ParseQuantity expands digit by digit, in time
// and memory that grow with the exponent (docs/testing.md, "The composition
// function: figures"). No sane quantity has more than 64 characters or an
// exponent of more than two digits.
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

// decodeError turns a failed conversion into a field error a tenant can act
// on: which field, and what it should have been. The converter's errors name
// no field; encoding/json's do, so on this path only the spec is decoded
// through JSON once more, to find the field.
func decodeError(root *field.Path, spec map[string]any, err error) *field.Error {
	b, jerr := json.Marshal(spec)
	if jerr == nil {
		jerr = json.Unmarshal(b, &v1alpha1.RedisHttpInstanceSpec{})
	}
	var te *json.UnmarshalTypeError
	if !errors.As(jerr, &te) || te.Field == "" {
		return field.Invalid(root, "", "cannot decode the instance's spec: "+err.Error())
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
