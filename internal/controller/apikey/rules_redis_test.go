package apikey

import (
	"context"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// TestRulesInRedis applies the rules of specs to a real redis-server and asks
// it, with ACL DRYRUN, what each user may run: what a tenant can do is what
// Redis says, not what the rules look like.
func TestRulesInRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs a real redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", "admin")
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "admin", Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()

	// What a read-only key must never do, whatever its command list says.
	notReadOnly := [][]string{
		{"SET", "app:1", "v"}, {"DEL", "app:1"}, {"FLUSHALL"}, {"ACL", "SETUSER", "x"}, {"SHUTDOWN"},
		{"REPLICAOF", "no", "one"}, {"CONFIG", "SET", "maxmemory", "1"}, {"PUBLISH", "app:ev", "x"},
		{"EVAL", "return 1", "0"}, {"FUNCTION", "FLUSH"}, {"CLIENT", "KILL", "ID", "1"}, {"DEBUG", "SLEEP", "0"},
	}
	// What any client sends on its own, and what must stay out of reach:
	// other connections and the server.
	connectionCommands := [][]string{
		{"PING"}, {"ECHO", "x"}, {"HELLO", "3"}, {"AUTH", "u", "p"}, {"QUIT"}, {"RESET"}, {"CLIENT", "SETNAME", "app"},
		{"CLIENT", "GETNAME"}, {"CLIENT", "ID"}, {"MULTI"}, {"EXEC"}, {"DISCARD"},
	}
	otherConnections := [][]string{
		{"CLIENT", "LIST"}, {"CLIENT", "KILL", "ID", "1"}, {"CLIENT", "PAUSE", "10"}, {"CLIENT", "NO-EVICT", "on"},
		{"MONITOR"}, {"CONFIG", "GET", "*"}, {"INFO"}, {"FLUSHALL"}, {"SHUTDOWN"},
	}
	cases := map[string]struct {
		reason  string
		p       v1alpha1.ApiKeyParameters
		allowed [][]string
		denied  [][]string
	}{
		"ReadOnlyWinsOverAll": {
			reason:  "readOnly with +@all must still be read-only: no write, admin, dangerous or scripting command.",
			p:       v1alpha1.ApiKeyParameters{ReadOnly: true, Commands: []string{"+@all"}, KeyPatterns: []string{"app:*"}, Channels: []string{"app:*"}},
			allowed: [][]string{{"GET", "app:1"}, {"HGETALL", "app:h"}, {"SUBSCRIBE", "app:ev"}, {"PING"}},
			denied:  notReadOnly,
		},
		"ReadOnlyWinsOverListedWrites": {
			reason:  "readOnly with listed write and admin commands must refuse them.",
			p:       v1alpha1.ApiKeyParameters{ReadOnly: true, Commands: []string{"get", "set", "acl", "config|set", "@admin"}, KeyPatterns: []string{"app:*"}},
			allowed: [][]string{{"GET", "app:1"}},
			denied:  [][]string{{"SET", "app:1", "v"}, {"ACL", "SETUSER", "x"}, {"CONFIG", "SET", "maxmemory", "1"}, {"SHUTDOWN"}},
		},
		"ReadOnlyDefault": {
			reason:  "A read-only key without a command list reads its keys and nothing else.",
			p:       v1alpha1.ApiKeyParameters{ReadOnly: true, KeyPatterns: []string{"app:*"}},
			allowed: [][]string{{"GET", "app:1"}, {"MGET", "app:1", "app:2"}},
			denied:  append([][]string{{"GET", "other:1"}, {"SCAN", "0"}, {"RANDOMKEY"}, {"KEYS", "*"}}, notReadOnly...),
		},
		"DefaultHidesOtherKeyNames": {
			reason:  "The default rules must not reveal key or channel names outside the key's patterns (PUBSUB CHANNELS listed every app's channels).",
			p:       v1alpha1.ApiKeyParameters{KeyPatterns: []string{"app:*"}, Channels: []string{"app:*"}},
			allowed: [][]string{{"GET", "app:1"}, {"SET", "app:1", "v"}, {"DEL", "app:1"}, {"SUBSCRIBE", "app:ev"}, {"PUBLISH", "app:ev", "x"}},
			denied: [][]string{
				{"SCAN", "0"}, {"RANDOMKEY"}, {"KEYS", "*"}, {"GET", "other:1"}, {"FLUSHALL"}, {"EVAL", "return 1", "0"},
				{"PUBSUB", "CHANNELS"}, {"PUBSUB", "NUMSUB", "other:ev"}, {"PUBSUB", "SHARDCHANNELS"}, {"PUBSUB", "SHARDNUMSUB", "other:ev"},
			},
		},
		"DefaultAllKeysMayScan": {
			reason:  "A key allowed every key may list them.",
			p:       v1alpha1.ApiKeyParameters{},
			allowed: [][]string{{"SCAN", "0"}, {"RANDOMKEY"}, {"GET", "any"}},
			denied:  [][]string{{"KEYS", "*"}, {"FLUSHALL"}},
		},
		"ScopedKeyConnects": {
			reason:  "A key with a command list can still do what every client does on its own (PING, HELLO, naming its connection, transactions) and nothing more.",
			p:       v1alpha1.ApiKeyParameters{KeyPatterns: []string{"app:*"}, Commands: []string{"get"}},
			allowed: connectionCommands,
			denied:  append([][]string{{"SET", "app:1", "v"}, {"GET", "other:1"}, {"SELECT", "1"}, {"SCAN", "0"}, {"KEYS", "*"}}, otherConnections...),
		},
		"ScopedKeyConnectsDespiteMinusAll": {
			reason:  "A command list that starts by removing everything cannot take away what clients need.",
			p:       v1alpha1.ApiKeyParameters{Commands: []string{"-@all", "+get"}},
			allowed: append([][]string{{"GET", "k"}}, connectionCommands...),
			denied:  append([][]string{{"SET", "k", "v"}}, otherConnections...),
		},
		"ReadOnlyDefaultConnects": {
			reason:  "A read-only key without a list can PING and use transactions, still without writing.",
			p:       v1alpha1.ApiKeyParameters{ReadOnly: true},
			allowed: connectionCommands,
			denied:  append([][]string{{"SET", "k", "v"}}, otherConnections...),
		},
		"TenantAsksForScan": {
			reason:  "A tenant who lists SCAN gets it.",
			p:       v1alpha1.ApiKeyParameters{KeyPatterns: []string{"app:*"}, Commands: []string{"+@read", "+scan"}},
			allowed: [][]string{{"SCAN", "0"}, {"GET", "app:1"}},
			denied:  [][]string{{"SET", "app:1", "v"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rr, err := rules(tc.p)
			if err != nil {
				t.Fatalf("rules(...): %v", err)
			}
			user := strings.ToLower(name)
			if err := c.Do(ctx, rr.Args(user)...).Err(); err != nil {
				t.Fatalf("%s\nACL SETUSER: %v", tc.reason, err)
			}
			for _, cmd := range tc.allowed {
				if err := dryRun(ctx, c, user, cmd); err != nil {
					t.Errorf("%s\n%v: want allowed, got %v", tc.reason, cmd, err)
				}
			}
			for _, cmd := range tc.denied {
				if err := dryRun(ctx, c, user, cmd); err == nil {
					t.Errorf("%s\n%v: want denied, got allowed", tc.reason, cmd)
				}
			}
		})
	}
}

// dryRun asks Redis whether user may run cmd.
func dryRun(ctx context.Context, c *goredis.Client, user string, cmd []string) error {
	args := []any{"ACL", "DRYRUN", user}
	for _, a := range cmd {
		args = append(args, a)
	}
	res, err := c.Do(ctx, args...).Text()
	if err != nil {
		return err
	}
	if res != "OK" {
		return errorf("%s", res)
	}
	return nil
}
