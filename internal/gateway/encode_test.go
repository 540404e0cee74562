package gateway

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendString(t *testing.T) {
	cases := map[string]struct {
		reason string
		in     string
		want   string
	}{
		"Plain":       {reason: "ASCII passes through.", in: "abc", want: "abc"},
		"Escapes":     {reason: "Quotes, backslashes and control bytes are escaped.", in: "a\"b\\c\n\t\x01", want: "a\"b\\c\n\t\x01"},
		"UTF8":        {reason: "UTF-8 passes through.", in: "héllo ✓", want: "héllo ✓"},
		"InvalidUTF8": {reason: "Bytes that are not UTF-8 become U+FFFD, as encoding/json does.", in: "a\xffb", want: "a\ufffdb"},
		"LineSep":     {reason: "U+2028 survives the escape.", in: "a\u2028b", want: "a\u2028b"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := appendString(nil, []byte(tc.in))
			var got string
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s\nappendString(%q) = %s is not JSON: %v", tc.reason, tc.in, b, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\nappendString(%q): -want, +got:\n%s", tc.reason, tc.in, diff)
			}
			std, _ := json.Marshal(tc.in)
			if diff := cmp.Diff(string(std), string(b)); diff != "" {
				t.Errorf("%s\nappendString(%q) differs from encoding/json: -want, +got:\n%s", tc.reason, tc.in, diff)
			}
		})
	}
}
