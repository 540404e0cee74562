package gateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// requests writes the key "sentinel" by every route; a refused token must
// not get any of them to run.
var sentinelRequests = []struct {
	name, method, path, body string
}{
	{"Command", http.MethodPost, "/", `["SET","sentinel","1"]`},
	{"Path", http.MethodGet, "/set/sentinel/1", ""},
	{"PathPost", http.MethodPost, "/set/sentinel", "1"},
	{"Pipeline", http.MethodPost, "/pipeline", `[["SET","sentinel","1"],["INCR","sentinel"]]`},
	{"MultiExec", http.MethodPost, "/multi-exec", `[["SET","sentinel","1"],["INCR","sentinel"]]`},
}

func TestUnauthorizedRunsNothing(t *testing.T) {
	// One connection: the refused requests must reuse the connection a
	// valid token of the same user warmed up.
	e := newEnv(t, withPoolSize(1))
	good := e.user(t, "app", "right-key", "~*", "+@all")
	e.user(t, "off", "its-key", "~*", "+@all")
	if err := e.admin.Do(context.Background(), "ACL", "SETUSER", "off", "off").Err(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason string
		token  string
		query  bool
	}{
		"WrongKey":      {reason: "A known user with a wrong key is refused, even on a connection warm with the right key.", token: contract.Token("app", "wrong-key")},
		"UnknownUser":   {reason: "An unknown user is refused.", token: contract.Token("nobody", "right-key")},
		"DisabledUser":  {reason: "A disabled user is refused.", token: contract.Token("off", "its-key")},
		"Malformed":     {reason: "A token that is not base64url of user:key is refused.", token: "not a token!"},
		"NoColon":       {reason: "A token without ':' is refused.", token: base64.RawURLEncoding.EncodeToString([]byte("appright-key"))},
		"StandardB64":   {reason: "Padded standard base64 is not the token format.", token: base64.StdEncoding.EncodeToString([]byte("app:right-key?"))},
		"Missing":       {reason: "No token at all is refused."},
		"WrongQuery":    {reason: "A wrong _token query parameter is refused.", token: contract.Token("app", "wrong-key"), query: true},
		"DefaultNoPass": {reason: "The default user with a wrong password is refused.", token: contract.Token("default", "nopass")},
	}
	for name, tc := range cases {
		for _, r := range sentinelRequests {
			t.Run(name+"/"+r.name, func(t *testing.T) {
				// Warm the only connection as app.
				if got := e.cmd(t, good, "GET", "warm"); got.Status != http.StatusOK {
					t.Fatalf("warm-up: %d %s", got.Status, got.Body)
				}
				path, tok := r.path, tc.token
				if tc.query {
					path, tok = path+"?_token="+tc.token, ""
				}
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				got := e.do(t, r.method, path, tok, body)
				if got.Status != http.StatusUnauthorized || !isJSONError(got.Body) {
					t.Errorf("%s\n%s %s: want 401 with a JSON error, got %d %s", tc.reason, r.method, r.path, got.Status, got.Body)
				}
				if e.exists(t, "sentinel") {
					t.Fatalf("%s\n%s %s: a refused token wrote the sentinel key", tc.reason, r.method, r.path)
				}
			})
		}
	}
	t.Run("QueryToken", func(t *testing.T) {
		got := e.do(t, http.MethodGet, "/echo/x?_token="+good, "", nil)
		if got.Status != http.StatusOK || got.Body != `{"result":"x"}` {
			t.Errorf("a valid _token runs the command without _token among its arguments: got %d %s", got.Status, got.Body)
		}
	})
}

// TestUnauthorizedOnOpenDefault: a wrong key runs nothing when Redis's
// default user has no password, whether it had none when the gateway's
// connections were dialled (a bring-your-own Redis) or lost it later, on
// connections already in the pool: after RESET such a connection is
// default's, and a command sent behind a refused AUTH would run as default.
func TestUnauthorizedOnOpenDefault(t *testing.T) {
	cases := map[string]struct {
		reason string
		// before runs before the default user loses its password.
		before bool
	}{
		"OpenAtDial": {
			reason: "A Redis whose default user never had a password runs nothing for a wrong key.",
		},
		"OpenedLater": {
			reason: "A Redis whose default user lost its password after the pool's connections were dialled runs nothing for a wrong key.",
			before: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPoolSize(1))
			e.user(t, "app", "right-key", "~*", "+@all")
			if tc.before {
				if got := e.cmd(t, contract.Token("app", "right-key"), "PING"); got.Status != http.StatusOK {
					t.Fatalf("PING before: %d %s", got.Status, got.Body)
				}
			}
			if err := e.admin.Do(context.Background(), "ACL", "SETUSER", "default", "nopass").Err(); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/", "/pipeline"} {
				body := `["SET","sentinel","1"]`
				if path == "/pipeline" {
					body = `[["SET","sentinel","1"]]`
				}
				got := e.do(t, http.MethodPost, path, contract.Token("app", "wrong-key"), []byte(body))
				if got.Status != http.StatusUnauthorized {
					t.Errorf("%s\nwrong key, POST %s: want 401, got %d %s", tc.reason, path, got.Status, got.Body)
				}
			}
			if got := e.cmd(t, contract.Token("app", "right-key"), "SET", "ok", "1"); got.Status != http.StatusOK {
				t.Errorf("%s\nright key: want 200, got %d %s", tc.reason, got.Status, got.Body)
			}
			if e.exists(t, "sentinel") {
				t.Errorf("%s\na refused token wrote the sentinel key as the open default user", tc.reason)
			}
		})
	}
}

func TestRevocation(t *testing.T) {
	cases := map[string]struct {
		reason string
		revoke []any
	}{
		"KeyRemoved": {
			reason: "A key removed from its user (a rotation's grace period ending) is refused within a second, although pooled connections stay authenticated.",
			revoke: []any{"ACL", "SETUSER", "app", "<old-key"},
		},
		"UserDeleted": {
			reason: "A deleted user is refused within a second.",
			revoke: []any{"ACL", "DELUSER", "app"},
		},
		"UserDisabled": {
			reason: "A disabled user is refused within a second.",
			revoke: []any{"ACL", "SETUSER", "app", "off"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withPoolSize(4))
			e.user(t, "app", "old-key", "~*", "+@all", ">new-key")
			old := contract.Token("app", "old-key")
			// Warm every pooled connection with the old key.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() { e.cmd(t, old, "GET", "warm") })
			}
			wg.Wait()
			if err := e.admin.Do(context.Background(), tc.revoke...).Err(); err != nil {
				t.Fatal(err)
			}
			revoked := time.Now()
			// Keep using the old key; nothing sent a second after the
			// change may run.
			for time.Since(revoked) < 1500*time.Millisecond {
				sent := time.Now()
				got := e.cmd(t, old, "INCR", "counter")
				if sent.Sub(revoked) < time.Second {
					continue
				}
				if got.Status != http.StatusUnauthorized {
					t.Fatalf("%s\nrequest sent %s after the change: want 401, got %d %s", tc.reason, sent.Sub(revoked), got.Status, got.Body)
				}
			}
			before := e.get(t, "counter")
			e.cmd(t, old, "INCR", "counter")
			if after := e.get(t, "counter"); after != before {
				t.Errorf("%s\nthe revoked key still writes: counter %q -> %q", tc.reason, before, after)
			}
		})
	}
}

func TestIdentityNeverMixed(t *testing.T) {
	// Few connections, many users: every connection serves many identities.
	e := newEnv(t, withPoolSize(3))
	const users = 12
	tokens := make([]string, users)
	for i := range users {
		tokens[i] = e.user(t, fmt.Sprintf("u%d", i), fmt.Sprintf("key-%d", i), fmt.Sprintf("~u%d:*", i), "+@all")
	}
	var wg sync.WaitGroup
	errs := make(chan error, users*50)
	for i := range users {
		wg.Go(func() {
			for j := range 50 {
				body := fmt.Sprintf(`[["ACL","WHOAMI"],["SET","u%d:k","%d"],["GET","u%d:k"]]`, i, j, i)
				got := e.do(t, http.MethodPost, "/pipeline", tokens[i], []byte(body))
				want := fmt.Sprintf(`[{"result":"u%d"},{"result":"OK"},{"result":"%d"}]`, i, j)
				if got.Body != want {
					errs <- fmt.Errorf("user u%d, request %d: want %s, got %d %s", i, j, want, got.Status, got.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestACLDecides(t *testing.T) {
	e := newEnv(t)
	ro := e.user(t, "reader", "k", "~public:*", "+@read")
	cases := map[string]struct {
		reason string
		args   []any
		status int
	}{
		"Allowed":   {reason: "A read of an allowed key runs.", args: []any{"GET", "public:x"}, status: http.StatusOK},
		"WrongKey":  {reason: "A key outside the user's patterns is Redis's NOPERM, 400.", args: []any{"GET", "private:x"}, status: http.StatusBadRequest},
		"NoWriting": {reason: "A write by a read-only user is Redis's NOPERM, 400.", args: []any{"SET", "public:x", "1"}, status: http.StatusBadRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := e.cmd(t, ro, tc.args...)
			if got.Status != tc.status {
				t.Errorf("%s\n%v: want %d, got %d %s", tc.reason, tc.args, tc.status, got.Status, got.Body)
			}
		})
	}
	if e.exists(t, "public:x") {
		t.Errorf("a read-only user wrote")
	}
}
