package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A script shaped like @upstash/ratelimit's: its shebang declares the
// Upstash-only allow-key-locking flag Redis 7.0 refuses.
const lockingScript = `#!lua flags=allow-key-locking
local r = redis.call("INCRBY", KEYS[1], ARGV[1])
return {r, 10}
`

func TestStrip(t *testing.T) {
	cases := map[string]struct {
		reason  string
		script  string
		want    string
		changed bool
	}{
		"OnlyFlag":     {reason: "The only flag goes, the shebang stays.", script: "#!lua flags=allow-key-locking\nreturn 1", want: "#!lua\nreturn 1", changed: true},
		"OtherFlags":   {reason: "Other flags are kept in order.", script: "#!lua flags=no-writes,allow-key-locking,allow-stale\nreturn 1", want: "#!lua flags=no-writes,allow-stale\nreturn 1", changed: true},
		"NoShebang":    {reason: "A script without shebang is untouched.", script: "return 1", want: "return 1"},
		"NoSuchFlag":   {reason: "A shebang without the flag is untouched.", script: "#!lua flags=no-writes\nreturn 1", want: "#!lua flags=no-writes\nreturn 1"},
		"FlagInBody":   {reason: "The flag's name in the body is not a flag.", script: "return 'flags=allow-key-locking'", want: "return 'flags=allow-key-locking'"},
		"ShebangOnly":  {reason: "A script of only a shebang line is handled.", script: "#!lua flags=allow-key-locking", want: "#!lua", changed: true},
		"OtherOptions": {reason: "Options other than flags are kept.", script: "#!lua name=x flags=allow-key-locking\nreturn 1", want: "#!lua name=x\nreturn 1", changed: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, changed := strip([]byte(tc.script))
			if diff := cmp.Diff(tc.want, string(got)); diff != "" || changed != tc.changed {
				t.Errorf("%s\nstrip(...): -want, +got:\n%s\nchanged: want %v, got %v", tc.reason, diff, tc.changed, changed)
			}
		})
	}
}

func TestLockingScripts(t *testing.T) {
	e := newEnv(t)
	tok := e.user(t, "app", "k", "~rl:*", "+@all")
	sha := sha1hex([]byte(lockingScript))
	eval := func(t *testing.T, e *env, cmd ...any) response {
		t.Helper()
		b, err := json.Marshal(cmd)
		if err != nil {
			t.Fatalf("cannot encode %v: %v", cmd, err)
		}
		return e.do(t, http.MethodPost, "/", tok, b)
	}

	// On a gateway that has not seen the script, EVALSHA of the client's
	// SHA-1 answers NOSCRIPT: the client falls back to EVAL.
	got := eval(t, e, "EVALSHA", sha, "1", "rl:a", "1")
	if got.Status != http.StatusBadRequest || !strings.Contains(got.Body, "NOSCRIPT") {
		t.Fatalf("EVALSHA of an unknown script: want 400 NOSCRIPT, got %d %s", got.Status, got.Body)
	}
	got = eval(t, e, "EVAL", lockingScript, "1", "rl:a", "1")
	if diff := cmp.Diff(`{"result":[1,10]}`, got.Body); diff != "" {
		t.Fatalf("EVAL of an allow-key-locking script: -want, +got:\n%s", diff)
	}
	got = eval(t, e, "EVALSHA", sha, "1", "rl:a", "2")
	if diff := cmp.Diff(`{"result":[3,10]}`, got.Body); diff != "" {
		t.Errorf("EVALSHA of the client's SHA-1 after EVAL: -want, +got:\n%s", diff)
	}
	got = eval(t, e, "SCRIPT", "EXISTS", sha, strings.Repeat("0", 40))
	if diff := cmp.Diff(`{"result":[1,0]}`, got.Body); diff != "" {
		t.Errorf("SCRIPT EXISTS of the client's SHA-1: -want, +got:\n%s", diff)
	}

	// Another replica (a second gateway on the same Redis): SCRIPT LOAD
	// answers the client's SHA-1, which EVALSHA then runs.
	e = &env{url: serve(t, NewServer(e.rds, Config{}))}
	got = eval(t, e, "SCRIPT", "LOAD", lockingScript)
	if diff := cmp.Diff(`{"result":"`+sha+`"}`, got.Body); diff != "" {
		t.Errorf("SCRIPT LOAD: -want, +got:\n%s", diff)
	}
	got = e.do(t, http.MethodPost, "/pipeline", tok, []byte(`[["EVALSHA","`+sha+`","1","rl:a","1"]]`))
	if diff := cmp.Diff(`[{"result":[4,10]}]`, got.Body); diff != "" {
		t.Errorf("EVALSHA in a pipeline: -want, +got:\n%s", diff)
	}
}

func TestScriptsBounded(t *testing.T) {
	s := NewScripts(3)
	for i := range 10 {
		s.rewrite([][]byte{[]byte("EVAL"), []byte("#!lua flags=allow-key-locking\nreturn " + strings.Repeat("1", i+1)), []byte("0")})
	}
	if len(s.sha) > 3 {
		t.Errorf("NewScripts(3) remembers %d SHA-1s", len(s.sha))
	}
}
