package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseToken(t *testing.T) {
	type want struct {
		username, key string
		err           error
	}
	cases := map[string]struct {
		reason string
		token  string
		want   want
	}{
		"RoundTrip": {
			reason: "A token made by Token should give back its username and key.",
			token:  Token("app-1", "s3cr3t"),
			want:   want{username: "app-1", key: "s3cr3t"},
		},
		"KeyWithColon": {
			reason: "The username ends at the first ':'; the key may contain more.",
			token:  Token("default", "a:b:c"),
			want:   want{username: "default", key: "a:b:c"},
		},
		"Padded": {
			reason: "The contract is unpadded base64url; padding is malformed.",
			token:  Token("u", "k") + "=",
			want:   want{err: ErrMalformedToken},
		},
		"StandardAlphabet": {
			reason: "Standard base64's '+' and '/' are not base64url.",
			token:  "dTo+Pz8/",
			want:   want{err: ErrMalformedToken},
		},
		"NoColon": {
			reason: "A token without ':' names no user.",
			token:  "a2V5",
			want:   want{err: ErrMalformedToken},
		},
		"EmptyUser": {
			reason: "An empty username is malformed.",
			token:  Token("", "k"),
			want:   want{err: ErrMalformedToken},
		},
		"EmptyKey": {
			reason: "An empty key is malformed.",
			token:  Token("u", ""),
			want:   want{err: ErrMalformedToken},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			u, k, err := ParseToken(tc.token)
			got := want{username: u, key: k, err: err}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{}), cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nParseToken(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
