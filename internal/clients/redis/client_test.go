package redis

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// TestACL runs the client against a real redis-server: users it writes are
// read back at once, Redis's compacted command rules are learned, and changes
// made behind its back show up once the snapshot is older than its max age.
func TestACL(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs a real redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", "admin")
	p := NewPool(WithSnapshotMaxAge(200 * time.Millisecond))
	t.Cleanup(func() { _ = p.Close() })
	acl := p.ACL(Credentials{Address: r.Addr, Password: "admin"})
	ctx := context.Background()

	h := strings.Repeat("ab", 32)
	rules := Rules{PasswordHashes: []string{h}, KeyPatterns: []string{"app:*"}, Commands: []string{"+@read", "-@dangerous"}}
	// Learned before any user has the rules, from a probe user that is gone
	// again.
	cmds, err := acl.Commands(ctx, rules)
	if err != nil || cmds != "-@all +@read -keys -sort_ro" {
		t.Errorf("Commands(...): want %q, got %q, %v", "-@all +@read -keys -sort_ro", cmds, err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "admin", Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = admin.Close() })
	if users, err := admin.Do(ctx, "ACL", "USERS").StringSlice(); err != nil || !slices.Equal(users, []string{"default"}) {
		t.Errorf("ACL USERS after Commands(...): want only default, got %q, %v", users, err)
	}
	if err := acl.SetUser(ctx, "web", rules); err != nil {
		t.Fatalf("SetUser(...): %v", err)
	}
	want := &User{Name: "web", Enabled: true, PasswordHashes: []string{h}, KeyPatterns: []string{"app:*"}, Commands: cmds}
	got, _, err := acl.GetUser(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetUser(...) right after SetUser: -want, +got:\n%s", diff)
	}

	// Once the snapshot refreshes, Redis's own view must match ours exactly.
	time.Sleep(250 * time.Millisecond)
	got, _, err = acl.GetUser(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetUser(...) from ACL LIST: -want, +got:\n%s", diff)
	}

	// Other credentials for the same address get their own login: a wrong
	// password is refused, not served from the snapshot read above.
	if _, _, err := p.ACL(Credentials{Address: r.Addr, Password: "wrong"}).GetUser(ctx, "web"); err == nil {
		t.Error("GetUser(...) with a wrong password: want an error, got none")
	}

	r.Restart(t)
	time.Sleep(250 * time.Millisecond)
	got, _, err = acl.GetUser(ctx, "web")
	if err != nil {
		t.Fatalf("GetUser(...) after a restart: %v", err)
	}
	if got != nil {
		t.Errorf("GetUser(...) after a restart without ACL file: want nil, got %+v", got)
	}

	if err := acl.SetUser(ctx, "web", rules); err != nil {
		t.Fatal(err)
	}
	if err := acl.DeleteUser(ctx, "web"); err != nil {
		t.Fatalf("DeleteUser(...): %v", err)
	}
	if got, ok, _ := acl.GetUser(ctx, "web"); ok {
		t.Errorf("GetUser(...) after DeleteUser: want nil, got %+v", got)
	}
	if err := acl.DeleteUser(ctx, "web"); err != nil {
		t.Errorf("DeleteUser(...) of a missing user: want nil, got %v", err)
	}
}

// TestRestarts runs the client against a real redis-server that restarts
// without an ACL file, with snapshots that never expire by age: a restart is
// noticed as soon as the pool reconnects, or when asked to check, and a check
// of a Redis that did not restart keeps the snapshot.
func TestRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs a real redis-server")
	}
	r := testenv.StartRedis(t, "--requirepass", "admin")
	p := NewPool(WithSnapshotMaxAge(time.Hour))
	t.Cleanup(func() { _ = p.Close() })
	acl := p.ACL(Credentials{Address: r.Addr, Password: "admin"})
	ctx := context.Background()
	rules := Rules{PasswordHashes: []string{strings.Repeat("ab", 32)}, KeyPatterns: []string{"app:*"}, Commands: []string{"+@read"}}
	exists := func(name string) bool {
		t.Helper()
		_, ok, err := acl.GetUser(ctx, name)
		if err != nil {
			t.Fatalf("GetUser(%q): %v", name, err)
		}
		return ok
	}
	setUser := func(name string) {
		t.Helper()
		if err := acl.SetUser(ctx, name, rules); err != nil {
			t.Fatalf("SetUser(%q): %v", name, err)
		}
	}
	setUser("web")
	if !exists("web") {
		t.Fatal("GetUser(...) right after SetUser: want the user, got none")
	}

	// A user made behind the pool's back stays unseen until the snapshot is
	// taken again, so it shows when that happens.
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: "admin", Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.Do(ctx, "ACL", "SETUSER", "manual", "on", "nopass").Err(); err != nil {
		t.Fatal(err)
	}
	p.CheckRestarts()
	if exists("manual") {
		t.Error("GetUser(...) after CheckRestarts without a restart: want the snapshot kept, got a new one")
	}

	// Nothing has reached Redis since the restart: the snapshot is all the
	// pool knows, until it is asked to check.
	r.Restart(t)
	if !exists("web") {
		t.Fatal("GetUser(...) after a restart nothing noticed: want the snapshot, got a new one; the test proves nothing")
	}
	p.CheckRestarts()
	if exists("web") {
		t.Error("GetUser(...) after a restart and CheckRestarts: want no user, got the snapshot's")
	}

	// The first command after a restart reconnects, and the new connection
	// tells the pool Redis is a new run: no check is needed.
	setUser("web")
	r.Restart(t)
	setUser("api")
	if exists("web") {
		t.Error("GetUser(...) after a restart the pool reconnected for: want no user, got the snapshot's")
	}
	if !exists("api") {
		t.Error("GetUser(...) of a user made after the restart: want the user, got none")
	}
}

func TestRunIDOf(t *testing.T) {
	errBoom := errors.New("boom")
	type want struct {
		id string
		ok bool
	}
	cases := map[string]struct {
		reason string
		cmd    *goredis.StringCmd
		want   want
	}{
		"ServerSection": {
			reason: "The run_id line of an INFO server reply should be found among the others.",
			cmd:    goredis.NewStringResult("# Server\r\nredis_version:7.2.4\r\nrun_id:0f5c1e\r\ntcp_port:6379\r\n", nil),
			want:   want{id: "0f5c1e", ok: true},
		},
		"NoRunID": {
			reason: "A reply without a run_id (not Redis, or a redacted one) should give none.",
			cmd:    goredis.NewStringResult("# Server\r\nredis_version:7.2.4\r\n", nil),
			want:   want{},
		},
		"Error": {
			reason: "A failed INFO should give no run_id.",
			cmd:    goredis.NewStringResult("", errBoom),
			want:   want{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			id, ok := runIDOf(tc.cmd)
			if diff := cmp.Diff(tc.want, want{id: id, ok: ok}, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nrunIDOf(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
