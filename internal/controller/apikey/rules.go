package apikey

import (
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Default command rules: everything but dangerous commands (FLUSHALL,
// CONFIG, ACL, DEBUG, SHUTDOWN...) and scripting, which -@dangerous does not
// cover (SCRIPT FLUSH, EVAL).
var (
	defaultCommands  = []string{"+@all", "-@dangerous", "-@scripting"}
	readOnlyCommands = []string{"+@read"}
)

// readOnlyRules come last for a read-only key, so that they win over any
// command list (Redis applies rules in order): no write, administration,
// dangerous or scripting command, and no PUBLISH (not @write, but not a
// read either). What is left besides @read is connection handling and
// introspection (PING, MULTI, CLIENT SETNAME, COMMAND...).
var readOnlyRules = []string{"-@write", "-@admin", "-@dangerous", "-@scripting", "-publish", "-spublish"}

// connectionRules are what every key that does not start from +@all gets
// (a commands list, or readOnly): what clients send on their own, whatever
// the app does. Health checks and pools PING; client libraries negotiate
// the protocol (HELLO), log in (AUTH), name their connection (CLIENT
// SETNAME, SETINFO: go-redis, node-redis and redis-py send it on every
// connection) and close it (QUIT, RESET); the gateway re-checks a
// subscriber's token with PING. None of them reads or writes a key, sees
// another connection or changes the server: CLIENT LIST, KILL, PAUSE and the
// like stay out, and so does SELECT (data of other databases). MULTI, EXEC
// and DISCARD only group commands that are each checked when queued, so a
// key may use transactions (the gateway's /multi-exec) with what it lists.
// CLIENT SETINFO is left out: Redis 7.0 does not know it (ACL SETUSER
// would fail), and the clients that send it ignore its error.
// AUTH, HELLO, QUIT and RESET need no permission in Redis (they run before
// a login); they are listed so that the rules say what a key can do.
var connectionRules = []string{
	"+ping", "+echo", "+hello", "+auth", "+quit", "+reset",
	"+client|setname", "+client|getname", "+client|id",
	"+multi", "+exec", "+discard",
}

// keyNameRules hide key and channel names outside the key's patterns: SCAN
// and RANDOMKEY take no key, so key patterns do not limit what they return
// (KEYS is already -@dangerous), and PUBSUB CHANNELS/NUMSUB answer every
// active channel of every app, whatever the channel patterns (an ApiKey
// listed another app's private channels through the gateway). Applied to the
// default command rules only: a tenant who lists commands gets what they
// list.
var keyNameRules = []string{"-scan", "-randomkey", "-pubsub|channels", "-pubsub|numsub", "-pubsub|shardchannels", "-pubsub|shardnumsub"}

// A command rule names a command, a subcommand (config|get) or a category
// (@hash), optionally signed. Anything else (~, &, #, >, on, nopass, reset...)
// would change more than commands, so it is rejected.
var commandRule = regexp.MustCompile(`^[+-]?@?[a-z0-9_.-]+(\|[a-z0-9_.-]+)?$`)

// rules returns the ACL rules the spec asks for, without passwords.
func rules(p v1alpha1.ApiKeyParameters) (redis.Rules, error) {
	base := field.NewPath("spec", "forProvider")
	r := redis.Rules{KeyPatterns: []string{"*"}}
	if len(p.KeyPatterns) > 0 {
		r.KeyPatterns = nil
		for i, k := range p.KeyPatterns {
			if err := pattern(k); err != nil {
				return redis.Rules{}, errors.Wrapf(err, "cannot use %s", base.Child("keyPatterns").Index(i))
			}
			r.KeyPatterns = append(r.KeyPatterns, k)
		}
	}
	for i, c := range p.Channels {
		if err := pattern(c); err != nil {
			return redis.Rules{}, errors.Wrapf(err, "cannot use %s", base.Child("channels").Index(i))
		}
		r.Channels = append(r.Channels, c)
	}

	switch {
	case len(p.Commands) > 0:
		for i, c := range p.Commands {
			c = strings.ToLower(c)
			if !commandRule.MatchString(c) {
				return redis.Rules{}, errors.Errorf("cannot use %s: %q is not a command, subcommand or @category", base.Child("commands").Index(i), c)
			}
			if c[0] != '+' && c[0] != '-' {
				c = "+" + c
			}
			r.Commands = append(r.Commands, c)
		}
	case p.ReadOnly:
		r.Commands = slices.Clone(readOnlyCommands)
	default:
		r.Commands = slices.Clone(defaultCommands)
	}
	if len(p.Commands) == 0 && !slices.Contains(r.KeyPatterns, "*") {
		r.Commands = append(r.Commands, keyNameRules...)
	}
	if len(p.Commands) > 0 || p.ReadOnly {
		// After the list, so that a list cannot take away what every client
		// needs (a leading -@all would).
		r.Commands = append(r.Commands, connectionRules...)
	}
	if p.ReadOnly {
		// Last, so that read-only wins over any listed command.
		r.Commands = append(r.Commands, readOnlyRules...)
	}
	return r, nil
}

// pattern rejects key and channel patterns that would not reach Redis as one
// pattern: empty ones, and ones with whitespace or control characters.
func pattern(p string) error {
	if p == "" {
		return errors.New("pattern is empty")
	}
	for _, c := range p {
		if c <= ' ' || c == 0x7f {
			return errors.Errorf("pattern %q contains whitespace or a control character", p)
		}
	}
	return nil
}

// username checks an ACL user name taken from the external-name annotation:
// it must not be the admin the provider connects as, nor Redis's default
// user, nor contain characters Redis does not allow in a name.
func username(name, admin string) error {
	switch {
	case name == "":
		return errors.New("cannot use an empty ACL user name")
	case name == "default" || name == admin:
		return errors.Errorf("cannot use ACL user %q: it is an administrator", name)
	case strings.HasPrefix(name, redis.ProbePrefix):
		return errors.Errorf("cannot use ACL user %q: names starting with %q are the provider's own", name, redis.ProbePrefix)
	case strings.ContainsFunc(name, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		return errors.Errorf("cannot use ACL user %q: it contains whitespace or a control character", name)
	}
	return nil
}
