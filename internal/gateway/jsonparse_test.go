package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// reference parses body as jsonCommands must, with encoding/json.
func reference(body []byte) ([][]string, bool) {
	var raw [][]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, false
	}
	out := make([][]string, len(raw))
	for i, c := range raw {
		if len(c) == 0 {
			return nil, false
		}
		for _, a := range c {
			var v any
			d := json.NewDecoder(bytes.NewReader(a))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				return nil, false
			}
			switch v := v.(type) {
			case string:
				out[i] = append(out[i], v)
			case json.Number:
				out[i] = append(out[i], string(a))
			case bool:
				out[i] = append(out[i], string(a))
			default:
				return nil, false
			}
		}
	}
	return out, len(out) > 0
}

func FuzzParseCommands(f *testing.F) {
	for _, s := range []string{
		`[["SET","k","v"]]`, `[["a",1,-2.5e+3,true,false]]`, `[["\u00e9\ud83d\ude00\n\"\\\/"]]`,
		`[["\ud800"]]`, `[["\ud800\u0041"]]`, ` [ [ "a" ] , [ "b" ] ] `, `[[null]]`, `[[[]]]`, `[]`, `[[]]`,
		`[["a"]] x`, `[["a",]]`, `[[01]]`, `[[1.]]`, `[["\x"]]`, "[[\"\x01\"]]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := jsonCommands(body, math.MaxInt, math.MaxInt)
		want, ok := reference(body)
		if ok != (err == nil) {
			t.Fatalf("jsonCommands(%q): error %v, encoding/json accepts: %v", body, err, ok)
		}
		if !ok || !utf8.Valid(body) {
			// Invalid UTF-8 passes through here, encoding/json
			// replaces it: only valid input is compared.
			return
		}
		g := make([][]string, len(got))
		for i, c := range got {
			g[i] = strs(c)
		}
		if diff := cmp.Diff(want, g); diff != "" {
			t.Fatalf("jsonCommands(%q): -encoding/json, +got:\n%s", body, diff)
		}
	})
}
