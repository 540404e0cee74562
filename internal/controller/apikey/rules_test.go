package apikey

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

func TestRules(t *testing.T) {
	type want struct {
		r   redis.Rules
		err error
	}
	cases := map[string]struct {
		reason string
		p      v1alpha1.ApiKeyParameters
		want   want
	}{
		"Defaults": {
			reason: "An empty spec should allow every key and every command but dangerous and scripting ones, and no channel.",
			want:   want{r: redis.Rules{KeyPatterns: []string{"*"}, Commands: []string{"+@all", "-@dangerous", "-@scripting"}}},
		},
		"ReadOnly": {
			reason: "A read-only key should get read commands only.",
			p:      v1alpha1.ApiKeyParameters{ReadOnly: true, KeyPatterns: []string{"app:*"}, Channels: []string{"ev:*"}},
			want:   want{r: redis.Rules{KeyPatterns: []string{"app:*"}, Channels: []string{"ev:*"}, Commands: []string{"+@read", "-scan", "-randomkey", "-pubsub|channels", "-pubsub|numsub", "-pubsub|shardchannels", "-pubsub|shardnumsub", "+ping", "+echo", "+hello", "+auth", "+quit", "+reset", "+client|setname", "+client|getname", "+client|id", "+multi", "+exec", "+discard", "-@write", "-@admin", "-@dangerous", "-@scripting", "-publish", "-spublish"}}},
		},
		"ExplicitCommands": {
			reason: "An explicit list should be what is allowed besides what every client needs (PING, HELLO, CLIENT SETNAME...), unsigned entries allowed, and read-only should still remove writes.",
			p:      v1alpha1.ApiKeyParameters{ReadOnly: true, Commands: []string{"GET", "set", "+@hash", "-hdel", "config|get"}},
			want:   want{r: redis.Rules{KeyPatterns: []string{"*"}, Commands: []string{"+get", "+set", "+@hash", "-hdel", "+config|get", "+ping", "+echo", "+hello", "+auth", "+quit", "+reset", "+client|setname", "+client|getname", "+client|id", "+multi", "+exec", "+discard", "-@write", "-@admin", "-@dangerous", "-@scripting", "-publish", "-spublish"}}},
		},
		"CommandWithACLSyntax": {
			reason: "A command entry that is really another ACL rule (here a password) should be refused.",
			p:      v1alpha1.ApiKeyParameters{Commands: []string{">secret"}},
			want:   want{err: errors.New(`cannot use spec.forProvider.commands[0]: ">secret" is not a command, subcommand or @category`)},
		},
		"CommandSpelledLikeAFlag": {
			reason: "A command entry spelled like an ACL flag should become a command rule (+allkeys, which Redis refuses as unknown), never the flag itself.",
			p:      v1alpha1.ApiKeyParameters{Commands: []string{"allkeys"}},
			want:   want{r: redis.Rules{KeyPatterns: []string{"*"}, Commands: append([]string{"+allkeys"}, connectionRules...)}},
		},
		"ChannelWithSpace": {
			reason: "A channel pattern with whitespace should be refused.",
			p:      v1alpha1.ApiKeyParameters{Channels: []string{"a b"}},
			want:   want{err: errors.New(`cannot use spec.forProvider.channels[0]: pattern "a b" contains whitespace or a control character`)},
		},
		"EmptyPattern": {
			reason: "An empty key pattern should be refused.",
			p:      v1alpha1.ApiKeyParameters{KeyPatterns: []string{""}},
			want:   want{err: errors.New(`cannot use spec.forProvider.keyPatterns[0]: pattern is empty`)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := rules(tc.p)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\nrules(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.r, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s\nrules(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
