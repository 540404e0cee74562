package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
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

// TestLargeReplies: replies encoded while they are written (above
// streamAbove) are the JSON encoding/json makes of them, whatever falls on
// a chunk's edge: multi-byte characters, invalid bytes, NUL bytes, base64
// groups.
func TestLargeReplies(t *testing.T) {
	e := newEnv(t)
	values := map[string]string{
		"nul":   strings.Repeat("\x00", 300<<10),
		"utf8":  "x" + strings.Repeat("é✓😀", 40<<10),
		"mixed": strings.Repeat("a\xff\"\\\u2028\n€", 30<<10),
	}
	for k, v := range values {
		if err := e.admin.Set(context.Background(), k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(map[string]string{"result": v}); err != nil {
			t.Fatal(err)
		}
		got := e.do(t, http.MethodGet, "/get/"+k, adminToken(), nil)
		if got.Status != http.StatusOK || got.Body != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("GET %s (%d bytes): got %d, a body of %d bytes that differs from encoding/json's (%d bytes)", k, len(v), got.Status, len(got.Body), want.Len()-1)
		}
		got = e.do(t, http.MethodGet, "/get/"+k, adminToken(), nil, "Upstash-Encoding", "base64")
		if wantB64 := `{"result":"` + base64.StdEncoding.EncodeToString([]byte(v)) + `"}`; got.Body != wantB64 {
			t.Errorf("GET %s (%d bytes) in base64: got %d, a body of %d bytes, want %d", k, len(v), got.Status, len(got.Body), len(wantB64))
		}
		got = e.do(t, http.MethodPost, "/pipeline", adminToken(), []byte(`[["GET","`+k+`"],["ECHO","after"]]`))
		if wantP := "[" + strings.TrimSuffix(want.String(), "\n") + `,{"result":"after"}]`; got.Body != wantP {
			t.Errorf("/pipeline GET %s: got %d, a body of %d bytes, want %d", k, got.Status, len(got.Body), len(wantP))
		}
	}
}
