package gateway

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func strs(b [][]byte) []string {
	var out []string
	for _, a := range b {
		out = append(out, string(a))
	}
	return out
}

func TestPathCommand(t *testing.T) {
	type args struct {
		path, query, body string
	}
	cases := map[string]struct {
		reason string
		args   args
		want   []string
		err    error
	}{
		"Segments":    {reason: "Segments are URL-decoded one by one.", args: args{path: "/set/a%2Fb/c%20d"}, want: []string{"set", "a/b", "c d"}},
		"EmptyValue":  {reason: "An empty segment is an empty argument.", args: args{path: "/set/k/"}, want: []string{"set", "k", ""}},
		"Body":        {reason: "The body is the last argument.", args: args{path: "/set/k", body: "v"}, want: []string{"set", "k", "v"}},
		"Query":       {reason: "Query pairs follow, in order, _token left out.", args: args{path: "/set/k/v", query: "EX=100&_token=secret&NX"}, want: []string{"set", "k", "v", "EX", "100", "NX"}},
		"BodyQuery":   {reason: "The body comes before the query's pairs.", args: args{path: "/set/k", query: "PX=5", body: "v"}, want: []string{"set", "k", "v", "PX", "5"}},
		"Empty":       {reason: "No command is refused.", args: args{path: "/"}, err: commandError("ERR empty command")},
		"BadEscaping": {reason: "A broken escape is refused.", args: args{path: "/get/%zz"}, err: commandError("ERR invalid URL escape in the path")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var body []byte
			if tc.args.body != "" {
				body = []byte(tc.args.body)
			}
			got, err := pathCommand(tc.args.path, tc.args.query, body)
			if diff := cmp.Diff(tc.err, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\npathCommand(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want, strs(got)); diff != "" {
				t.Errorf("%s\npathCommand(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestJSONCommand(t *testing.T) {
	cases := map[string]struct {
		reason string
		body   string
		want   []string
		err    error
	}{
		"Scalars": {reason: "Numbers keep their JSON text; booleans become true/false.", body: `["SET","k",-1.5e3,true,false,0]`, want: []string{"SET", "k", "-1.5e3", "true", "false", "0"}},
		"Escaped": {reason: "Escaped strings are decoded.", body: `["ECHO","\u00e9\n"]`, want: []string{"ECHO", "é\n"}},
		"Null":    {reason: "null is not an argument.", body: `["SET","k",null]`, err: commandError("ERR arguments must be strings, numbers or booleans")},
		"Object":  {reason: "An object is not an argument.", body: `["SET","k",{}]`, err: commandError("ERR arguments must be strings, numbers or booleans")},
		"Empty":   {reason: "An empty array is no command.", body: `[]`, err: commandError("ERR empty command")},
		"NotJSON": {reason: "A body that is not JSON is refused.", body: `SET k v`, err: commandError("ERR the body must be a JSON array of strings, numbers and booleans")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := jsonCommand([]byte(tc.body), math.MaxInt)
			if diff := cmp.Diff(tc.err, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\njsonCommand(%s): -want error, +got error:\n%s", tc.reason, tc.body, diff)
			}
			if diff := cmp.Diff(tc.want, strs(got)); diff != "" {
				t.Errorf("%s\njsonCommand(%s): -want, +got:\n%s", tc.reason, tc.body, diff)
			}
		})
	}
}
