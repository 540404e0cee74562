package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/resp"
)

func TestProtocol(t *testing.T) {
	e := newEnv(t)
	tok := adminToken()
	ctx := context.Background()
	if err := e.admin.RPush(ctx, "list", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.Set(ctx, "str", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}

	type args struct {
		method string
		path   string
		body   string
		header []string
	}
	type want struct {
		Status int
		Body   string
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"JSONCommand": {
			reason: "POST / with a JSON array runs it; numbers and booleans become strings.",
			args:   args{method: http.MethodPost, path: "/", body: `["SET","j",1.5,"EX",100]`},
			want:   want{Status: http.StatusOK, Body: `{"result":"OK"}`},
		},
		"JSONCommandBoolean": {
			reason: "A boolean argument is sent as its JSON text.",
			args:   args{method: http.MethodPost, path: "/", body: `["ECHO",true]`},
			want:   want{Status: http.StatusOK, Body: `{"result":"true"}`},
		},
		"JSONCommandEscapes": {
			reason: "JSON escapes in a string argument are decoded.",
			args:   args{method: http.MethodPost, path: "/", body: `["ECHO","a\"b\\c\u00e9"]`},
			want:   want{Status: http.StatusOK, Body: `{"result":"a\"b\\cé"}`},
		},
		"PathForm": {
			reason: "GET /cmd/arg runs the command with URL-decoded segments.",
			args:   args{method: http.MethodGet, path: "/echo/a%2Fb%20c"},
			want:   want{Status: http.StatusOK, Body: `{"result":"a/b c"}`},
		},
		"PathFormQuery": {
			reason: "Query pairs are appended to the command in order; a flag without value is one argument.",
			args:   args{method: http.MethodGet, path: "/set/q/v?EX=100&NX"},
			want:   want{Status: http.StatusOK, Body: `{"result":"OK"}`},
		},
		"PathFormBody": {
			reason: "A POST body is the last argument, byte for byte.",
			args:   args{method: http.MethodPost, path: "/echo", body: "line one\nline two"},
			want:   want{Status: http.StatusOK, Body: `{"result":"line one\nline two"}`},
		},
		"Integer": {
			reason: "Integer replies are JSON numbers.",
			args:   args{method: http.MethodGet, path: "/llen/list"},
			want:   want{Status: http.StatusOK, Body: `{"result":2}`},
		},
		"Nil": {
			reason: "A nil reply is null.",
			args:   args{method: http.MethodGet, path: "/get/missing"},
			want:   want{Status: http.StatusOK, Body: `{"result":null}`},
		},
		"Array": {
			reason: "Array replies are JSON arrays.",
			args:   args{method: http.MethodGet, path: "/lrange/list/0/-1"},
			want:   want{Status: http.StatusOK, Body: `{"result":["a","b"]}`},
		},
		"Base64": {
			reason: "With Upstash-Encoding: base64 every string at every depth is base64; integers and null are not.",
			args:   args{method: http.MethodPost, path: "/", body: `["EVAL","return {'OK', 7, {'x'}, false}","0"]`, header: []string{"Upstash-Encoding", "base64"}},
			want:   want{Status: http.StatusOK, Body: `{"result":["T0s=",7,["eA=="],null]}`},
		},
		"Base64Status": {
			reason: "A status reply is a string too.",
			args:   args{method: http.MethodGet, path: "/ping", header: []string{"Upstash-Encoding", "base64"}},
			want:   want{Status: http.StatusOK, Body: `{"result":"UE9ORw=="}`},
		},
		"Base64ErrorNotEncoded": {
			reason: "Errors are never encoded.",
			args:   args{method: http.MethodGet, path: "/lpush/str/x", header: []string{"Upstash-Encoding", "base64"}},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"WRONGTYPE Operation against a key holding the wrong kind of value"}`},
		},
		"CommandError": {
			reason: "A Redis error is its own text with 400.",
			args:   args{method: http.MethodPost, path: "/", body: `["NOSUCHCOMMAND"]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "}`},
		},
		"BadJSON": {
			reason: "A body that is not a JSON array of scalars is a 400 JSON error.",
			args:   args{method: http.MethodPost, path: "/", body: `{"a":1}`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR the body must be a JSON array of strings, numbers and booleans"}`},
		},
		"NestedArgument": {
			reason: "An argument that is an array is refused.",
			args:   args{method: http.MethodPost, path: "/", body: `["SET","k",["v"]]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR arguments must be strings, numbers or booleans"}`},
		},
		"Pipeline": {
			reason: "A pipeline answers one result or error per command, in order, with 200.",
			args:   args{method: http.MethodPost, path: "/pipeline", body: `[["SET","p","1"],["INCR","p"],["LPUSH","p","x"],["GET","p"]]`},
			want:   want{Status: http.StatusOK, Body: `[{"result":"OK"},{"result":2},{"error":"WRONGTYPE Operation against a key holding the wrong kind of value"},{"result":"2"}]`},
		},
		"PipelineBase64": {
			reason: "A pipeline's results are base64 too.",
			args:   args{method: http.MethodPost, path: "/pipeline", body: `[["ECHO","a"],["LRANGE","list",0,-1]]`, header: []string{"Upstash-Encoding", "base64"}},
			want:   want{Status: http.StatusOK, Body: `[{"result":"YQ=="},{"result":["YQ==","Yg=="]}]`},
		},
		"EmptyPipeline": {
			reason: "An empty pipeline is refused.",
			args:   args{method: http.MethodPost, path: "/pipeline", body: `[]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR empty pipeline"}`},
		},
		"MultiExec": {
			reason: "A transaction answers like a pipeline; a runtime error stays with its command.",
			args:   args{method: http.MethodPost, path: "/multi-exec", body: `[["SET","m","1"],["INCR","m"],["LPUSH","m","x"]]`},
			want:   want{Status: http.StatusOK, Body: `[{"result":"OK"},{"result":2},{"error":"WRONGTYPE Operation against a key holding the wrong kind of value"}]`},
		},
		"MultiExecDiscarded": {
			reason: "A transaction Redis discards is one error.",
			args:   args{method: http.MethodPost, path: "/multi-exec", body: `[["SET","discarded","1"],["NOSUCHCOMMAND"]]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"EXECABORT Transaction discarded because of previous errors."}`},
		},
		"MultiExecNestedExec": {
			reason: "An EXEC inside /multi-exec would end the transaction early: refused before anything runs.",
			args:   args{method: http.MethodPost, path: "/multi-exec", body: `[["SET","discarded","1"],["exec"]]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR EXEC is not allowed in /multi-exec: the gateway wraps the commands in MULTI and EXEC"}`},
		},
		"MethodNotAllowed": {
			reason: "Methods other than GET, POST, PUT and HEAD get 405 with a JSON error.",
			args:   args{method: http.MethodDelete, path: "/get/k"},
			want:   want{Status: http.StatusMethodNotAllowed, Body: `{"error":"method DELETE is not allowed: use GET, POST, PUT or HEAD"}`},
		},
		"SubscribeRefused": {
			reason: "SUBSCRIBE as a command would never end: it is refused with a pointer to /subscribe.",
			args:   args{method: http.MethodPost, path: "/", body: `["SUBSCRIBE","c"]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR SUBSCRIBE is not supported here: use the /subscribe or /psubscribe endpoint"}`},
		},
		"AuthRefused": {
			reason: "AUTH would change the request's identity: refused.",
			args:   args{method: http.MethodPost, path: "/pipeline", body: `[["SET","authrefused","1"],["AUTH","other","key"]]`},
			want:   want{Status: http.StatusBadRequest, Body: `{"error":"ERR AUTH is not supported over HTTP"}`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var body []byte
			if tc.args.body != "" {
				body = []byte(tc.args.body)
			}
			got := e.do(t, tc.args.method, tc.args.path, tok, body, tc.args.header...)
			if diff := cmp.Diff(tc.want, want{Status: got.Status, Body: got.Body}); diff != "" {
				t.Errorf("%s\n%s %s: -want, +got:\n%s", tc.reason, tc.args.method, tc.args.path, diff)
			}
			if ct := got.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s\nContent-Type: want application/json, got %q", tc.reason, ct)
			}
		})
	}
	if e.exists(t, "discarded") || e.exists(t, "authrefused") {
		t.Errorf("a discarded transaction or a refused pipeline wrote a key")
	}
}

func TestSyncToken(t *testing.T) {
	e := newEnv(t)
	seen := map[string]bool{}
	for range 3 {
		got := e.cmd(t, adminToken(), "SET", "k", "v")
		tok := got.Header.Get("Upstash-Sync-Token")
		if tok == "" || seen[tok] {
			t.Fatalf("upstash-sync-token: want a fresh value on every response, got %q after %v", tok, seen)
		}
		seen[tok] = true
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	e := newEnv(t)
	value := make([]byte, 256)
	for i := range value {
		value[i] = byte(i)
	}
	if got := e.do(t, http.MethodPost, "/set/bin", adminToken(), value); got.Status != http.StatusOK {
		t.Fatalf("POST /set/bin: %d %s", got.Status, got.Body)
	}
	if got := e.get(t, "bin"); got != string(value) {
		t.Fatalf("stored value: -want, +got:\n%s", cmp.Diff(string(value), got))
	}
	got := e.do(t, http.MethodGet, "/get/bin", adminToken(), nil, "Upstash-Encoding", "base64")
	want := `{"result":"` + b64(value) + `"}`
	if diff := cmp.Diff(want, got.Body); diff != "" {
		t.Errorf("GET /get/bin with base64: -want, +got:\n%s", diff)
	}
	got = e.do(t, http.MethodPost, "/pipeline", adminToken(), []byte(`[["LPUSH","binl","x"],["RPUSHX","binl","y"]]`))
	if got.Status != http.StatusOK {
		t.Fatalf("pipeline: %d %s", got.Status, got.Body)
	}
	if err := e.admin.RPush(context.Background(), "binl", value).Err(); err != nil {
		t.Fatal(err)
	}
	got = e.do(t, http.MethodPost, "/multi-exec", adminToken(), []byte(`[["LRANGE","binl",0,-1]]`), "Upstash-Encoding", "base64")
	want = `[{"result":["` + b64([]byte("x")) + `","` + b64([]byte("y")) + `","` + b64(value) + `"]}]`
	if diff := cmp.Diff(want, got.Body); diff != "" {
		t.Errorf("multi-exec LRANGE with base64: -want, +got:\n%s", diff)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	big := bytes.Repeat([]byte("x"), 11<<20)
	cases := map[string]struct {
		reason string
		path   string
		body   []byte
	}{
		"PathFormBody": {reason: "An 11 MB value is refused before anything runs.", path: "/set/big", body: big},
		"JSONCommand":  {reason: "An 11 MB JSON command is refused.", path: "/", body: []byte(`["SET","big","` + string(big) + `"]`)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := e.do(t, http.MethodPost, tc.path, adminToken(), tc.body)
			if got.Status != http.StatusRequestEntityTooLarge || !isJSONError(got.Body) {
				t.Errorf("%s\nPOST %s: want 413 with a JSON error, got %d %q", tc.reason, tc.path, got.Status, trunc(got.Body))
			}
		})
	}
	t.Run("Chunked", func(t *testing.T) {
		// Without Content-Length the limit applies while reading.
		req, _ := http.NewRequest(http.MethodPost, e.url+"/set/big", struct{ *bytes.Reader }{bytes.NewReader(big)})
		req.Header.Set("Authorization", "Bearer "+adminToken())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked 11 MB body: want 413, got %d", res.StatusCode)
		}
	})
	if e.exists(t, "big") {
		t.Errorf("a refused body was written")
	}
}

func TestHeaderLimit(t *testing.T) {
	e := newEnv(t)
	small := strings.Repeat("v", 8<<10)
	if got := e.do(t, http.MethodGet, "/set/url/"+small, adminToken(), nil); got.Status != http.StatusOK {
		t.Errorf("an 8 KiB value in the path: want 200, got %d %s", got.Status, trunc(got.Body))
	}
	got := e.do(t, http.MethodGet, "/set/url/"+strings.Repeat("w", DefaultMaxHeaderBytes), adminToken(), nil)
	if got.Status != http.StatusRequestHeaderFieldsTooLarge || !isJSONError(got.Body) {
		t.Errorf("a request line above the header limit: want 431 with a JSON error, got %d %q", got.Status, trunc(got.Body))
	}
	if v := e.get(t, "url"); v != small {
		t.Errorf("a refused request changed the key: got %d bytes", len(v))
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func b64(b []byte) string {
	return strings.TrimSuffix(string(appendValue(nil, resp.Value{Kind: resp.KindBulk, Str: b}, true)[1:]), `"`)
}
