package podrunner

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMapPaths(t *testing.T) {
	mounts := map[string]string{"/etc/redis": "/l/cfg", "/etc/redis-auth": "/l/auth", "/data": "/l/pv"}
	cases := map[string]struct {
		reason string
		in     string
		want   string
	}{
		"ConfigArgument": {
			reason: "A file under a mount point should map to the local directory.",
			in:     "/etc/redis/redis.conf",
			want:   "/l/cfg/redis.conf",
		},
		"SiblingMount": {
			reason: "A mount point should match only as a whole path element, so /etc/redis-auth maps to its own directory.",
			in:     "include /etc/redis-auth/password.conf\ndir /data\n",
			want:   "include /l/auth/password.conf\ndir /l/pv\n",
		},
		"QuotedAndEmbedded": {
			reason: "Quoted paths map; a mount point inside a longer word does not.",
			in:     `dir "/data" x/data /database`,
			want:   `dir "/l/pv" x/data /database`,
		},
		"Script": {
			reason: "Paths in a shell script map wherever they stand.",
			in:     `[ -f /data/dump.rdb ] && exec redis-server /etc/redis/redis.conf`,
			want:   `[ -f /l/pv/dump.rdb ] && exec redis-server /l/cfg/redis.conf`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, mapPaths(tc.in, mounts)); diff != "" {
				t.Errorf("%s\nmapPaths(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"PW": "s3cret", "PORT": "6379"}
	cases := map[string]struct {
		reason string
		in     string
		want   string
	}{
		"Reference":  {reason: "A known $(VAR) should be replaced by its value.", in: "--requirepass $(PW)", want: "--requirepass s3cret"},
		"Unknown":    {reason: "An unknown reference should stay as written, as Kubernetes does.", in: "$(NOPE):$(PORT)", want: "$(NOPE):6379"},
		"Escaped":    {reason: "$$ should produce a literal $ and suppress expansion.", in: "$$(PW)", want: "$(PW)"},
		"PlainShell": {reason: "A shell-style $VAR is not a Kubernetes reference and should stay.", in: "$PW", want: "$PW"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, expand(tc.in, env)); diff != "" {
				t.Errorf("%s\nexpand(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestMapEnvPaths(t *testing.T) {
	mounts := map[string]string{"/data": "/l/pv", "/data/sub": "/l/sub", "/etc/backup-ca": "/l/ca"}
	vars := map[string]string{
		"DATA_DIR":      "/data",
		"NESTED":        "/data/sub/x",
		"CA":            "/etc/backup-ca/ca.crt",
		"PREFIXED":      "/database",
		"SECRET":        "ab+/data/cd",
		"RELATIVE":      "data",
		"REDIS_ADDRESS": "cache-redis.team-a.svc.cluster.local:6379",
	}
	mapEnvPaths(vars, mounts)
	want := map[string]string{
		"DATA_DIR":      "/l/pv",
		"NESTED":        "/l/sub/x",
		"CA":            "/l/ca/ca.crt",
		"PREFIXED":      "/database",
		"SECRET":        "ab+/data/cd",
		"RELATIVE":      "data",
		"REDIS_ADDRESS": "cache-redis.team-a.svc.cluster.local:6379",
	}
	if diff := cmp.Diff(want, vars); diff != "" {
		t.Errorf("Only whole values that are paths under a mount point map (the longest mount point first); others, secrets among them, stay as they are.\nmapEnvPaths(...): -want, +got:\n%s", diff)
	}
}
