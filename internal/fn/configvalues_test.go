package fn

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/internal/testenv"
)

// edgeValues are values a tenant might write for any directive: bounds of
// every integer type Redis uses, the spellings strconv accepts and Redis's
// string2ll does not, switches and keyspace-event classes in odd forms.
func edgeValues() []string {
	v := []string{
		"", "0", "-0", "+0", "00", "+5", "007", "0500", "1", "-1", "-5", "-6", " 5", "5 ", "1e3", "0x10", "5.0",
		"10", "63", "64", "65", "99", "100", "101", "500", "501", "1000", "1001", "1000000", "1000001",
		"yes", "no", "YES", "Yes", "on", "1 2",
		"Ex", "KEA", "A", "$", "Kx", "g$lshzxetmdn", "KEg$lshzxetmdnA", "Ex;", "E x",
	}
	for _, n := range []int64{1<<31 - 1, 1 << 31, -1 << 31, 1 << 32, 1 << 62, 1<<63 - 1} {
		v = append(v, strconv.FormatInt(n, 10))
	}
	return append(v, "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551616")
}

// notOnThisBuild are values the official images accept but Debian's
// redis-server does not: it is built without the jemalloc active
// defragmentation needs.
var notOnThisBuild = map[string]bool{"activedefrag yes": true}

// TestAcceptedConfigValuesStartRedis proves that every value the function
// accepts for spec.config, among every edge value of every directive, is one
// redis-server 7.0 starts with: a tenant never gets a pod that crash-loops on
// its own config. Accepted values are spread over a few servers, each
// directive with one of its accepted values.
func TestAcceptedConfigValuesStartRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	testenv.Binary(t, "redis-server")
	path := field.NewPath("spec", "config")
	accepted := map[string][]string{}
	servers := 0
	for _, d := range AllowedDirectives() {
		for _, v := range edgeValues() {
			if _, errs := parseConfig(map[string]string{d: v}, path); len(errs) == 0 && !notOnThisBuild[d+" "+v] {
				accepted[d] = append(accepted[d], v)
			}
		}
		servers = max(servers, len(accepted[d]))
	}
	for i := range servers {
		var conf strings.Builder
		for _, d := range slices.Sorted(maps.Keys(accepted)) {
			// The directive as redisConf writes it.
			vs := accepted[d]
			fmt.Fprintf(&conf, "%s %s\n", d, vs[i%len(vs)])
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "redis.conf")
			if err := os.WriteFile(p, []byte(conf.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			// StartRedis fails the test with redis-server's own error, which
			// names the line, if it refuses the file.
			r := testenv.StartRedis(t, p)
			r.Stop()
		})
	}
}

// configLineRE is what an accepted value may hold: characters that
// redis-server's config splitter (sdssplitargs) reads as one plain argument.
var configLineRE = regexp.MustCompile(`^[A-Za-z0-9$-]+$`)

// FuzzParseConfig feeds arbitrary directives and values to spec.config's
// parser. Whatever it accepts must be one plain argument on one line, and,
// unless -short, a value a real redis-server takes (CONFIG SET runs the same
// parser as the config file).
func FuzzParseConfig(f *testing.F) {
	for _, d := range []string{"timeout", "hz", "notify-keyspace-events", "slowlog-log-slower-than", "list-max-listpack-size", "activedefrag", "Timeout", "maxmemory"} {
		for _, v := range []string{"0", "+5", "007", "-0", "500", "Ex", "yes", "", "-5", "9223372036854775807"} {
			f.Add(d, v)
		}
	}
	var c *redis.Client
	if !testing.Short() {
		r := testenv.StartRedis(f)
		c = redis.NewClient(&redis.Options{Addr: r.Addr, DisableIdentity: true})
		f.Cleanup(func() { _ = c.Close() })
	}
	path := field.NewPath("spec", "config")
	f.Fuzz(func(t *testing.T, name, value string) {
		dirs, errs := parseConfig(map[string]string{name: value}, path)
		if len(errs) > 0 {
			if len(dirs) != 0 {
				t.Fatalf("parseConfig(%q: %q): both directives and errors", name, value)
			}
			return
		}
		if len(dirs) != 1 || dirs[0].Name != name || dirs[0].Value != value {
			t.Fatalf("parseConfig(%q: %q) = %v, want the directive as given", name, value, dirs)
		}
		if !configLineRE.MatchString(value) {
			t.Fatalf("parseConfig accepted %s %q, which redis.conf would not read as one plain argument", name, value)
		}
		if c == nil || notOnThisBuild[name+" "+value] {
			return
		}
		if err := c.ConfigSet(context.Background(), name, value).Err(); err != nil {
			t.Fatalf("parseConfig accepted %s %q, which redis-server refuses: %v", name, value, err)
		}
	})
}
