package redis

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseUser(t *testing.T) {
	type want struct {
		u  *User
		ok bool
	}
	cases := map[string]struct {
		reason string
		line   string
		want   want
	}{
		"ManagedUser": {
			reason: "A user made by SetUser should parse into its passwords, patterns, channels and Redis's compacted command rules.",
			line:   "user web on sanitize-payload #bb #aa ~app:* ~b* resetchannels &app:events -@all +@read -keys -sort_ro",
			want: want{ok: true, u: &User{
				Name: "web", Enabled: true,
				PasswordHashes: []string{"aa", "bb"},
				KeyPatterns:    []string{"app:*", "b*"},
				Channels:       []string{"app:events"},
				Commands:       "-@all +@read -keys -sort_ro",
			}},
		},
		"DefaultUser": {
			reason: "Shorthand flags should parse like the patterns they stand for, and nopass should be visible.",
			line:   "user default on nopass allkeys allchannels +@all",
			want: want{ok: true, u: &User{
				Name: "default", Enabled: true, NoPass: true,
				KeyPatterns: []string{"*"},
				Channels:    []string{"*"},
				Commands:    "+@all",
			}},
		},
		"DisabledUserWithSelector": {
			reason: "Selectors and read/write key permissions are never set by the provider, so they should show up as command rules (drift).",
			line:   "user x off %R~r:* (~s:* +get)",
			want: want{ok: true, u: &User{
				Name:     "x",
				Commands: "%R~r:* (~s:* +get)",
			}},
		},
		"NotAUser": {
			reason: "A line that does not start with 'user' should be refused.",
			line:   "something else",
			want:   want{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			u, ok := ParseUser(tc.line)
			if diff := cmp.Diff(tc.want.ok, ok); diff != "" {
				t.Errorf("%s\nParseUser(...): -want ok, +got ok:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.u, u); diff != "" {
				t.Errorf("%s\nParseUser(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRulesArgs(t *testing.T) {
	cases := map[string]struct {
		reason string
		rules  Rules
		want   []any
	}{
		"Everything": {
			reason: "SETUSER should reset the user, then add exactly the digests, patterns, channels and command rules asked for.",
			rules: Rules{
				PasswordHashes: []string{"aa", "bb"},
				KeyPatterns:    []string{"app:*"},
				Channels:       []string{"ev"},
				Commands:       []string{"+@all", "-@dangerous"},
			},
			want: []any{"ACL", "SETUSER", "u", "reset", "on", "#aa", "#bb", "~app:*", "resetchannels", "&ev", "-@all", "+@all", "-@dangerous"},
		},
		"NoChannels": {
			reason: "Without channels the user should have none (resetchannels), whatever acl-pubsub-default says.",
			rules:  Rules{PasswordHashes: []string{"aa"}, KeyPatterns: []string{"*"}, Commands: []string{"+get"}},
			want:   []any{"ACL", "SETUSER", "u", "reset", "on", "#aa", "~*", "resetchannels", "-@all", "+get"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.rules.Args("u")); diff != "" {
				t.Errorf("%s\nArgs(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
