package gateway

import (
	"net/url"
	"strings"
)

// jsonCommand parses a JSON array command (POST /): strings are taken as
// they are, numbers as their JSON text, booleans as "true"/"false".
func jsonCommand(body []byte, maxArgs int) ([][]byte, error) {
	p := jsonParser{b: body, cmds: 1, args: maxArgs}
	if p.peek() != '[' {
		return nil, commandError("ERR the body must be a JSON array of strings, numbers and booleans")
	}
	cmd, err := p.command()
	if err == nil && !p.end() {
		err = errJSONSyntax
	}
	if err != nil {
		return nil, err
	}
	if len(cmd) == 0 {
		return nil, commandError("ERR empty command")
	}
	return cmd, nil
}

// jsonCommands parses a JSON array of commands (POST /pipeline,
// /multi-exec) of at most maxCommands commands and maxArgs arguments in
// all.
func jsonCommands(body []byte, maxCommands, maxArgs int) ([][][]byte, error) {
	p := jsonParser{b: body, cmds: maxCommands, args: maxArgs}
	if p.peek() != '[' {
		return nil, commandError("ERR the body must be a JSON array of commands, each an array of strings, numbers and booleans")
	}
	cmds, err := p.commands()
	if err == nil && !p.end() {
		err = errJSONSyntax
	}
	if err != nil {
		return nil, err
	}
	if len(cmds) == 0 {
		return nil, commandError("ERR empty pipeline")
	}
	for _, c := range cmds {
		if len(c) == 0 {
			return nil, commandError("ERR empty command")
		}
	}
	return cmds, nil
}

// pathCommand builds the path form's command: /cmd/a/b?EX=100 is
// "cmd a b EX 100" with every segment URL-decoded (so %2F stays inside its
// segment), the body (when not empty) as the last argument and the query's
// pairs appended in order, _token left out.
func pathCommand(escapedPath, rawQuery string, body []byte) ([][]byte, error) {
	p := strings.TrimPrefix(escapedPath, "/")
	if p == "" {
		return nil, commandError("ERR empty command")
	}
	segs := strings.Split(p, "/")
	args := make([][]byte, 0, len(segs)+2)
	for _, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, commandError("ERR invalid URL escape in the path")
		}
		args = append(args, []byte(d))
	}
	if len(body) > 0 {
		args = append(args, body)
	}
	for _, kv := range queryPairs(rawQuery) {
		if kv[0] == "_token" {
			continue
		}
		args = append(args, []byte(kv[0]))
		if kv[1] != "" {
			args = append(args, []byte(kv[1]))
		}
	}
	return args, nil
}

// queryPairs splits a raw query into decoded key-value pairs in order
// (url.ParseQuery loses the order, and order is a command's syntax).
func queryPairs(raw string) [][2]string {
	if raw == "" {
		return nil
	}
	var out [][2]string
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			dv = v
		}
		out = append(out, [2]string{dk, dv})
	}
	return out
}
