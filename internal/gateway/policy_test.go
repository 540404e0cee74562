package gateway

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runsAs returns a variant of name with a NUL and digits appended
// ("SELECT\x00<n>") that Redis, at addr, runs as name: Redis hashes all of
// a name's bytes but compares with strcasecmp, which stops at the NUL. With
// sub, the variant is of the subcommand of container name. It fails the test
// when no variant matches (the premise of the tests using it).
func runsAs(t *testing.T, addr, name, sub string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	if _, err := nc.Write(appendCommand(nil, []byte("AUTH"), []byte(adminPassword))); err != nil {
		t.Fatal(err)
	}
	if l, _ := br.ReadString('\n'); l != "+OK\r\n" {
		t.Fatalf("cannot AUTH: %q", l)
	}
	// One at a time: a RESET variant de-authenticates the connection,
	// and Redis then drops it with what was sent after unread.
	for n := range 20000 {
		v := name + "\x00" + strconv.Itoa(n)
		wb := appendCommand(nil, []byte(v))
		if sub != "" {
			v = sub + "\x00" + strconv.Itoa(n)
			wb = appendCommand(nil, []byte(name), []byte(v))
		}
		if _, err := nc.Write(wb); err != nil {
			t.Fatal(err)
		}
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("cannot read Redis's reply: %v", err)
		}
		// Unknown commands and subcommands answer "-ERR unknown ...":
		// anything else (OK, an arity error, a stream) is the command
		// running.
		if !strings.HasPrefix(l, "-ERR unknown") {
			return v
		}
	}
	t.Fatalf("Redis ran no NUL variant of %s %s: the premise of this test is gone", name, sub)
	return ""
}

// TestCommandNamesAsRedisMatchesThem: a name Redis would run as a refused,
// stateful or blocking command, though it is not written as one, is
// refused; the token's later requests are unaffected.
func TestCommandNamesAsRedisMatchesThem(t *testing.T) {
	e := newEnv(t, withPoolSize(2))
	app := e.user(t, "app", "k", "~*", "&*", "+@all")
	cases := map[string]struct {
		reason string
		// cmd is the command; its first word is replaced by a NUL
		// variant that Redis runs, or its second with sub.
		cmd string
		sub bool
	}{
		"SELECT":       {reason: "SELECT\\0<n> would move the connection to another database.", cmd: "SELECT 1"},
		"MULTI":        {reason: "MULTI\\0<n> would leave the connection in a transaction.", cmd: "MULTI"},
		"EXEC":         {reason: "EXEC is stateful.", cmd: "EXEC"},
		"DISCARD":      {reason: "DISCARD is stateful.", cmd: "DISCARD"},
		"WATCH":        {reason: "WATCH is stateful.", cmd: "WATCH k"},
		"UNWATCH":      {reason: "UNWATCH is stateful.", cmd: "UNWATCH"},
		"READONLY":     {reason: "READONLY is stateful.", cmd: "READONLY"},
		"READWRITE":    {reason: "READWRITE is stateful.", cmd: "READWRITE"},
		"CLIENT":       {reason: "CLIENT is stateful.", cmd: "CLIENT SETNAME x"},
		"ClientReply":  {reason: "CLIENT REPLY\\0<n> OFF would silence the connection.", cmd: "CLIENT REPLY OFF", sub: true},
		"AUTH":         {reason: "AUTH would change the connection's user.", cmd: "AUTH app k"},
		"HELLO":        {reason: "HELLO would change the protocol.", cmd: "HELLO 3"},
		"RESET":        {reason: "RESET is the gateway's.", cmd: "RESET"},
		"QUIT":         {reason: "QUIT is refused.", cmd: "QUIT"},
		"SUBSCRIBE":    {reason: "SUBSCRIBE's replies never end.", cmd: "SUBSCRIBE ch"},
		"PSUBSCRIBE":   {reason: "PSUBSCRIBE's replies never end.", cmd: "PSUBSCRIBE ch"},
		"SSUBSCRIBE":   {reason: "SSUBSCRIBE's replies never end.", cmd: "SSUBSCRIBE ch"},
		"UNSUBSCRIBE":  {reason: "UNSUBSCRIBE is refused.", cmd: "UNSUBSCRIBE ch"},
		"PUNSUBSCRIBE": {reason: "PUNSUBSCRIBE is refused.", cmd: "PUNSUBSCRIBE ch"},
		"SUNSUBSCRIBE": {reason: "SUNSUBSCRIBE is refused.", cmd: "SUNSUBSCRIBE ch"},
		"MONITOR":      {reason: "MONITOR's replies never end.", cmd: "MONITOR"},
		"REPLCONF":     {reason: "REPLCONF is refused.", cmd: "REPLCONF listening-port 1"},
		"SYNC":         {reason: "SYNC is refused.", cmd: "SYNC"},
		"PSYNC":        {reason: "PSYNC is refused.", cmd: "PSYNC ? -1"},
		"BLPOP":        {reason: "BLPOP\\0<n> k 0 would block forever.", cmd: "BLPOP k 0"},
		"BRPOP":        {reason: "BRPOP's timeout is bounded.", cmd: "BRPOP k 0"},
		"BLMOVE":       {reason: "BLMOVE's timeout is bounded.", cmd: "BLMOVE k l LEFT LEFT 0"},
		"BZPOPMIN":     {reason: "BZPOPMIN's timeout is bounded.", cmd: "BZPOPMIN k 0"},
		"BLMPOP":       {reason: "BLMPOP's timeout is bounded.", cmd: "BLMPOP 0 1 k LEFT"},
		"XREAD":        {reason: "XREAD BLOCK is bounded.", cmd: "XREAD BLOCK 0 STREAMS s $"},
		"WAIT":         {reason: "WAIT is bounded.", cmd: "WAIT 1 0"},
	}
	want := `{"error":` + strconv.Quote(errName.Error()) + `}`
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			words := strings.Fields(tc.cmd)
			if tc.sub {
				words[1] = runsAs(t, e.redis.Addr, words[0], words[1])
			} else {
				words[0] = runsAs(t, e.redis.Addr, words[0], "")
			}
			cmd, _ := json.Marshal(words)
			pipeline, _ := json.Marshal([][]string{{"SET", "before", "1"}, words})
			var path strings.Builder
			for _, w := range words {
				path.WriteString("/" + url.PathEscape(w))
			}
			for _, r := range []struct{ method, path, body string }{
				{http.MethodPost, "/", string(cmd)},
				{http.MethodGet, path.String(), ""},
				{http.MethodPost, "/pipeline", string(pipeline)},
				{http.MethodPost, "/multi-exec", string(pipeline)},
			} {
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				got := e.do(t, r.method, r.path, app, body)
				if got.Status != http.StatusBadRequest || got.Body != want {
					t.Errorf("%s\n%s %s %q: want 400 %s, got %d %s", tc.reason, r.method, r.path, r.body, want, got.Status, got.Body)
				}
			}
		})
	}
	if e.exists(t, "before") {
		t.Errorf("A pipeline with a refused name should run nothing; its SET ran")
	}
	// Every pooled connection is still in database 0, in no transaction,
	// replying.
	for i := range 8 {
		k := "after:" + strconv.Itoa(i)
		if got := e.cmd(t, app, "SET", k, "1"); got.Status != http.StatusOK || got.Body != `{"result":"OK"}` {
			t.Errorf("request %d after the refusals: want 200 OK, got %d %s", i, got.Status, got.Body)
		}
		if !e.exists(t, k) {
			t.Errorf("request %d after the refusals wrote %q outside database 0", i, k)
		}
	}
}

func TestPlainName(t *testing.T) {
	cases := map[string]struct {
		reason string
		name   string
		want   bool
	}{
		"Command":  {reason: "A command's name is plain.", name: "get", want: true},
		"Module":   {reason: "Module commands have dots and underscores.", name: "FT._LIST", want: true},
		"Dash":     {reason: "Subcommands have dashes.", name: "NO-EVICT", want: true},
		"NUL":      {reason: "A NUL ends Redis's comparison early.", name: "SELECT\x00674", want: false},
		"Space":    {reason: "No command has a space.", name: "GET ", want: false},
		"NonASCII": {reason: "No command has a byte above 127.", name: "G\xc9T", want: false},
		"Pipe":     {reason: "ACL's container|sub form names no command in a request.", name: "config|get", want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, plainName([]byte(tc.name))); diff != "" {
				t.Errorf("%s\nplainName(%q): -want, +got:\n%s", tc.reason, tc.name, diff)
			}
		})
	}
}
