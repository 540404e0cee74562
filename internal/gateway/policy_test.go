package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ai-decenter/redishttp/internal/resp"
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
	if _, err := nc.Write(resp.AppendCommand(nil, []byte("AUTH"), []byte(adminPassword))); err != nil {
		t.Fatal(err)
	}
	if l, _ := br.ReadString('\n'); l != "+OK\r\n" {
		t.Fatalf("cannot AUTH: %q", l)
	}
	// One at a time: a RESET variant de-authenticates the connection,
	// and Redis then drops it with what was sent after unread.
	for n := range 20000 {
		v := name + "\x00" + strconv.Itoa(n)
		wb := resp.AppendCommand(nil, []byte(v))
		if sub != "" {
			v = sub + "\x00" + strconv.Itoa(n)
			wb = resp.AppendCommand(nil, []byte(name), []byte(v))
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

func TestPolicyBound(t *testing.T) {
	p := Policy{MaxBlock: 10 * time.Second}
	cases := map[string]struct {
		reason string
		cmd    []string
		want   []string
		err    error
	}{
		"BLPOPZero":        {reason: "0 means forever: cut to MaxBlock in seconds.", cmd: []string{"BLPOP", "a", "b", "0"}, want: []string{"BLPOP", "a", "b", "10"}},
		"BLPOPShort":       {reason: "A short whole timeout is kept as it is.", cmd: []string{"blpop", "a", "2"}, want: []string{"blpop", "a", "2"}},
		"BLPOPFraction":    {reason: "A fraction is written so that Redis truncates it to its milliseconds.", cmd: []string{"blpop", "a", "1.5"}, want: []string{"blpop", "a", "1.5005"}},
		"BLPOPMilli":       {reason: "0.001 is 1 ms, written so that no rounding makes it 0 (forever).", cmd: []string{"BLPOP", "a", "0.001"}, want: []string{"BLPOP", "a", "0.0015"}},
		"BLPOPSubMilli":    {reason: "0.0001 truncates to 0 ms in Redis, which is forever: cut to MaxBlock.", cmd: []string{"BLPOP", "a", "0.0001"}, want: []string{"BLPOP", "a", "10"}},
		"BLPOPNegSubMilli": {reason: "-0.0001 truncates to 0 ms too.", cmd: []string{"BLPOP", "a", "-0.0001"}, want: []string{"BLPOP", "a", "10"}},
		"BLPOPNegative":    {reason: "A negative timeout is refused, as Redis does.", cmd: []string{"BLPOP", "a", "-1"}, err: errNegative},
		"BLPOPExponent":    {reason: "An exponent is a decimal number too.", cmd: []string{"BLPOP", "a", "2e-3"}, want: []string{"BLPOP", "a", "0.0025"}},
		"BLPOPBigExponent": {reason: "A huge timeout is cut to MaxBlock.", cmd: []string{"BLPOP", "a", "1e99"}, want: []string{"BLPOP", "a", "10"}},
		"BLPOPHex":         {reason: "strtold reads 0x0 as 0 (forever): refused.", cmd: []string{"BLPOP", "a", "0x0"}, err: errSeconds},
		"BLPOPHexLong":     {reason: "strtold reads 0x10000 as 65536 s: refused.", cmd: []string{"BLPOP", "a", "0x10000"}, err: errSeconds},
		"BLPOPInf":         {reason: "strtold reads inf: refused.", cmd: []string{"BLPOP", "a", "inf"}, err: errSeconds},
		"BLPOPSpace":       {reason: "A leading space is refused.", cmd: []string{"BLPOP", "a", " 0"}, err: errSeconds},
		"BLPOPPlus":        {reason: "A sign other than '-' is refused.", cmd: []string{"BLPOP", "a", "+0"}, err: errSeconds},
		"BLPOPNUL":         {reason: "A NUL is refused.", cmd: []string{"BLPOP", "a", "1\x00"}, err: errSeconds},
		"BLPOPLongExp":     {reason: "An exponent of three digits is refused (no big number arithmetic on request).", cmd: []string{"BLPOP", "a", "1e999"}, err: errSeconds},
		"BLMOVE":           {reason: "BLMOVE's timeout is last.", cmd: []string{"BLMOVE", "a", "b", "LEFT", "RIGHT", "100"}, want: []string{"BLMOVE", "a", "b", "LEFT", "RIGHT", "10"}},
		"BLMPOP":           {reason: "BLMPOP's timeout is first.", cmd: []string{"BLMPOP", "0", "1", "a", "LEFT"}, want: []string{"BLMPOP", "10", "1", "a", "LEFT"}},
		"XREADGROUP":       {reason: "XREADGROUP BLOCK is in milliseconds.", cmd: []string{"XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"}, want: []string{"XREADGROUP", "GROUP", "g", "c", "BLOCK", "10000", "STREAMS", "s", ">"}},
		"XREADGroupNamedStreams": {
			reason: "GROUP takes two arguments: a group named STREAMS does not end the options.",
			cmd:    []string{"XREADGROUP", "GROUP", "STREAMS", "c", "BLOCK", "0", "STREAMS", "s", ">"},
			want:   []string{"XREADGROUP", "GROUP", "STREAMS", "c", "BLOCK", "10000", "STREAMS", "s", ">"},
		},
		"XREADTwoBlocks": {reason: "Redis takes the last BLOCK: every one is bounded.", cmd: []string{"XREAD", "BLOCK", "5", "BLOCK", "0", "STREAMS", "s", "$"}, want: []string{"XREAD", "BLOCK", "5", "BLOCK", "10000", "STREAMS", "s", "$"}},
		"XREADBlockNUL":  {reason: "Redis compares options with strcasecmp: BLOCK\\0x is BLOCK.", cmd: []string{"XREAD", "BLOCK\x00x", "0", "STREAMS", "s", "$"}, want: []string{"XREAD", "BLOCK\x00x", "10000", "STREAMS", "s", "$"}},
		"XREADNoack":     {reason: "NOACK takes no argument.", cmd: []string{"XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "s", ">"}, want: []string{"XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "10000", "STREAMS", "s", ">"}},
		"XREADCount":     {reason: "COUNT takes one argument.", cmd: []string{"XREAD", "COUNT", "BLOCK", "BLOCK", "0", "STREAMS", "s", "$"}, want: []string{"XREAD", "COUNT", "BLOCK", "BLOCK", "10000", "STREAMS", "s", "$"}},
		"XREADNoBlock":   {reason: "XREAD without BLOCK is untouched.", cmd: []string{"XREAD", "COUNT", "1", "STREAMS", "block", "0"}, want: []string{"XREAD", "COUNT", "1", "STREAMS", "block", "0"}},
		"XREADBadMillis": {reason: "A BLOCK Redis's string2ll would refuse is refused.", cmd: []string{"XREAD", "BLOCK", "0x0", "STREAMS", "s", "$"}, err: errMillis},
		"XREADLeadZero":  {reason: "string2ll refuses leading zeros.", cmd: []string{"XREAD", "BLOCK", "00", "STREAMS", "s", "$"}, err: errMillis},
		"WAIT":           {reason: "WAIT's timeout is in milliseconds.", cmd: []string{"WAIT", "1", "60000"}, want: []string{"WAIT", "1", "10000"}},
		"WAITShort":      {reason: "A short WAIT is kept.", cmd: []string{"WAIT", "1", "5"}, want: []string{"WAIT", "1", "5"}},
		"WAITNegZero":    {reason: "string2ll refuses -0.", cmd: []string{"WAIT", "1", "-0"}, err: errMillis},
		"NotANumber":     {reason: "A timeout that is not a number is refused, as Redis would.", cmd: []string{"BLPOP", "a", "x"}, err: errSeconds},
		"NotBlocking":    {reason: "Other commands are untouched.", cmd: []string{"LPOP", "a", "0"}, want: []string{"LPOP", "a", "0"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var cmd [][]byte
			for _, a := range tc.cmd {
				cmd = append(cmd, []byte(a))
			}
			_, err := p.check(cmd)
			if diff := cmp.Diff(tc.err, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\ncheck(%q): -want error, +got error:\n%s", tc.reason, tc.cmd, diff)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, strs(cmd)); diff != "" {
				t.Errorf("%s\ncheck(%q): -want, +got:\n%s", tc.reason, tc.cmd, diff)
			}
		})
	}
}

// TestTimeoutForms sends blocking commands with every form of timeout Redis
// parses to a real redis-server: each answers (null after the bound, or a
// JSON 400), none blocks until the request times out.
func TestTimeoutForms(t *testing.T) {
	e := newEnv(t, withTimeout(5*time.Second), withConfig(Config{Policy: Policy{MaxBlock: 100 * time.Millisecond}}))
	if err := e.admin.XGroupCreateMkStream(context.Background(), "s", "STREAMS", "$").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.XGroupCreate(context.Background(), "s", "g", "$").Err(); err != nil {
		t.Fatal(err)
	}
	const null = `{"result":null}`
	seconds := []string{"0", "0.0", "-0", "0x0", "0X0", "0x10000", "0x1p4", "inf", "+inf", "infinity", "1e9", "1e-7", "0.0001", "-0.0001", " 0", "0 ", "+0", "00", ".0", "0.", "1e999", "nan"}
	jsonOf := func(cmd []string) string {
		b, err := json.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var cases []struct{ name, body string }
	for _, s := range seconds {
		cases = append(cases, struct{ name, body string }{"BLPOP " + s, jsonOf([]string{"BLPOP", "empty", s})})
		cases = append(cases, struct{ name, body string }{"BZMPOP " + s, jsonOf([]string{"BZMPOP", s, "1", "z", "MIN"})})
	}
	for _, c := range [][]string{
		{"XREADGROUP", "GROUP", "STREAMS", "c", "BLOCK", "0", "STREAMS", "s", ">"},
		{"XREADGROUP", "GROUP", "g", "c", "NOACK", "BLOCK", "0", "STREAMS", "s", ">"},
		{"XREAD", "BLOCK", "100", "BLOCK", "0", "STREAMS", "s", "$"},
		{"XREAD", "COUNT", "1", "BLOCK", "0", "STREAMS", "s", "$"},
		{"XREAD", "block\x00x", "0", "STREAMS", "s", "$"},
		{"XREAD", "BLOCK", "0x0", "STREAMS", "s", "$"},
		{"WAIT", "1", "0"},
		{"WAIT", "1", "00"},
		{"WAIT", "1", "-0"},
	} {
		cases = append(cases, struct{ name, body string }{strings.Join(c, " "), jsonOf(c)})
	}
	for _, tc := range cases {
		got := e.do(t, http.MethodPost, "/", adminToken(), []byte(tc.body))
		answered := (got.Status == http.StatusOK && (got.Body == null || got.Body == `{"result":0}`)) || (got.Status == http.StatusBadRequest && isJSONError(got.Body))
		if !answered {
			t.Errorf("%s: want null (or 0 for WAIT) after the bound, or a JSON 400; got %d %s", tc.name, got.Status, got.Body)
		}
	}
}
