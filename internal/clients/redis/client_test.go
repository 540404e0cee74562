package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ai-decenter/redishttp/internal/testenv"
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
	if _, ok := acl.Commands(rules); ok {
		t.Fatal("Commands(...): known before any SetUser")
	}
	if err := acl.SetUser(ctx, "web", rules); err != nil {
		t.Fatalf("SetUser(...): %v", err)
	}
	cmds, ok := acl.Commands(rules)
	if !ok || cmds != "-@all +@read -keys -sort_ro" {
		t.Errorf("Commands(...): want %q, got %q (known %t)", "-@all +@read -keys -sort_ro", cmds, ok)
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
