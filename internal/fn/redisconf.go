package fn

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// Paths inside the Redis container. The ConfigMap holds redis.conf; the auth
// Secret holds contract.AuthFileKey, which redis.conf includes, so the
// password is never in a ConfigMap.
const (
	configDir    = "/etc/redis"
	confKey      = "redis.conf"
	configFile   = configDir + "/" + confKey
	authDir      = "/etc/redis-auth"
	dataDir      = "/data"
	checksumAnno = "redishttp.io/config-checksum"
)

// A directive is one extra redis.conf line a tenant asked for.
type directive struct {
	Name  string
	Value string
}

// A checker validates the value of an allow-listed directive and returns a
// reason when it is not acceptable.
type checker func(v string) string

// allowed lists the redis.conf directives tenants may set through
// spec.config, with how each value is checked. Everything else is refused:
// the directives this function manages (maxmemory, dir, save, appendonly,
// requirepass, include, ...), and those that could reach outside the pod or
// weaken it (rename-command, enable-debug-command, aclfile, replicaof...).
var allowed = map[string]checker{
	"timeout":                       intRange(0, 1<<31-1),
	"tcp-keepalive":                 intRange(0, 1<<31-1),
	"hz":                            intRange(1, 500),
	"dynamic-hz":                    yesNo,
	"maxclients":                    intRange(1, 1000000),
	"notify-keyspace-events":        keyspaceEvents,
	"lazyfree-lazy-eviction":        yesNo,
	"lazyfree-lazy-expire":          yesNo,
	"lazyfree-lazy-server-del":      yesNo,
	"lazyfree-lazy-user-del":        yesNo,
	"lazyfree-lazy-user-flush":      yesNo,
	"slowlog-log-slower-than":       intRange(-1, 1<<62),
	"slowlog-max-len":               intRange(0, 1<<31-1),
	"latency-monitor-threshold":     intRange(0, 1<<62),
	"maxmemory-samples":             intRange(1, 64),
	"maxmemory-eviction-tenacity":   intRange(0, 100),
	"activerehashing":               yesNo,
	"activedefrag":                  yesNo,
	"active-defrag-cycle-min":       intRange(1, 99),
	"active-defrag-cycle-max":       intRange(1, 99),
	"active-defrag-threshold-lower": intRange(0, 1000),
	"active-defrag-threshold-upper": intRange(0, 1000),
	"hash-max-listpack-entries":     intRange(0, 1<<31-1),
	"hash-max-listpack-value":       intRange(0, 1<<31-1),
	"list-max-listpack-size":        intRange(-5, 1<<31-1),
	"list-compress-depth":           intRange(0, 1<<31-1),
	"set-max-intset-entries":        intRange(0, 1<<31-1),
	"zset-max-listpack-entries":     intRange(0, 1<<31-1),
	"zset-max-listpack-value":       intRange(0, 1<<31-1),
	"stream-node-max-bytes":         intRange(0, 1<<31-1),
	"stream-node-max-entries":       intRange(0, 1<<31-1),
	"lfu-log-factor":                intRange(0, 1<<31-1),
	"lfu-decay-time":                intRange(0, 1<<31-1),
	"busy-reply-threshold":          intRange(0, 1<<62),
}

// AllowedDirectives returns the directives spec.config accepts, sorted. The
// README's list is checked against it by a test.
func AllowedDirectives() []string {
	out := make([]string, 0, len(allowed))
	for k := range allowed {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var keyspaceEventsRE = regexp.MustCompile(`^[KEg$lshzxetmdnA]+$`)

// redisIntRE is the integer syntax of Redis's string2ll (util.c), which
// redis-server 7.0 parses integer directives with: "0", or an optional '-'
// and a first digit 1-9; no '+', no leading zeros, no spaces; fewer than 21
// characters. strconv.ParseInt is laxer ("+5", "007", "-0").
var redisIntRE = regexp.MustCompile(`^(0|-?[1-9][0-9]{0,18})$`)

// redisInt parses an integer exactly as redis-server does.
func redisInt(v string) (int64, bool) {
	if !redisIntRE.MatchString(v) {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func intRange(lo, hi int64) checker {
	return func(v string) string {
		n, ok := redisInt(v)
		if ok && n >= lo && n <= hi {
			return ""
		}
		if n, err := strconv.ParseInt(v, 10, 64); !ok && err == nil && n >= lo && n <= hi {
			return fmt.Sprintf("must be written as Redis reads it: no '+' sign, no leading zeros (%d)", n)
		}
		return fmt.Sprintf("must be a whole number from %d to %d", lo, hi)
	}
}

func yesNo(v string) string {
	if v != "yes" && v != "no" {
		return `must be "yes" or "no"`
	}
	return ""
}

func keyspaceEvents(v string) string {
	if v == "" {
		return "must not be empty: leave notify-keyspace-events out to keep notifications off"
	}
	if !keyspaceEventsRE.MatchString(v) {
		return "must be a combination of the classes K E g $ l s h z x e t m d n A (see Redis keyspace notifications)"
	}
	return ""
}

// parseConfig validates spec.config and returns its directives sorted by name,
// so the rendered redis.conf (and its checksum) is deterministic.
func parseConfig(in map[string]string, path *field.Path) ([]directive, field.ErrorList) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > maxConfigDirectives {
		return nil, field.ErrorList{field.TooMany(path, len(in), maxConfigDirectives)}
	}
	var out []directive
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)

	var errs field.ErrorList
	for _, name := range names {
		v := in[name]
		p := path.Key(shown(name))
		if strings.ContainsAny(v, "\r\n\x00") {
			errs = append(errs, field.Invalid(p, shown(v), "must be one line: a newline would let one directive write others"))
			continue
		}
		check, ok := allowed[strings.ToLower(name)]
		if !ok {
			errs = append(errs, field.Forbidden(p, refusal(shown(name))))
			continue
		}
		if name != strings.ToLower(name) {
			errs = append(errs, field.Invalid(p, name, fmt.Sprintf("directive names are lowercase: use %q", strings.ToLower(name))))
			continue
		}
		if msg := check(v); msg != "" {
			errs = append(errs, field.Invalid(p, shown(v), msg))
			continue
		}
		out = append(out, directive{Name: name, Value: v})
	}
	return out, errs
}

// managed are the directives this function writes itself.
var managed = map[string]bool{
	"maxmemory": true, "maxmemory-policy": true, "save": true, "appendonly": true, "appendfsync": true,
	"dir": true, "port": true, "bind": true, "protected-mode": true, "requirepass": true, "include": true,
	"dbfilename": true, "appendfilename": true, "appenddirname": true, "daemonize": true, "logfile": true,
	"shutdown-on-sigterm": true, "shutdown-on-sigint": true,
}

func refusal(name string) string {
	n := strings.ToLower(name)
	if managed[n] {
		return fmt.Sprintf("%q is managed by redishttp from the instance's spec and cannot be set in spec.config", name)
	}
	return fmt.Sprintf("%q is not an allowed directive; allowed: %s", name, strings.Join(AllowedDirectives(), ", "))
}

// redisConf renders redis.conf. It holds no secret: the password comes from
// the included auth file, mounted from the instance's Secret.
func redisConf(p *params) string {
	var b strings.Builder
	b.Grow(1024)
	b.WriteString("# Managed by redishttp. Changes here are overwritten; set spec.config instead.\n")
	fmt.Fprintf(&b, "port %d\n", contract.RedisPort)
	b.WriteString("bind * -::*\n")
	b.WriteString("protected-mode yes\n")
	fmt.Fprintf(&b, "dir %s\n", dataDir)
	fmt.Fprintf(&b, "maxmemory %s\n", redisBytes(p.Maxmemory))
	fmt.Fprintf(&b, "maxmemory-policy %s\n", p.MaxmemoryPolicy)
	if p.RDB {
		b.WriteString("save 3600 1 300 100 60 10000\n")
	} else {
		b.WriteString("save \"\"\n")
	}
	if p.AppendOnly {
		b.WriteString("appendonly yes\nappendfsync everysec\n")
	} else {
		b.WriteString("appendonly no\n")
	}
	if savesOnlyOnStop(p) {
		// Redis's default with no save points is to save nothing on SIGTERM.
		b.WriteString("shutdown-on-sigterm save\n")
	}
	if p.HA() {
		b.WriteString(haRedisConf())
	}
	for _, d := range p.Config {
		fmt.Fprintf(&b, "%s %s\n", d.Name, d.Value)
	}
	// Last, so nothing above can override the password.
	fmt.Fprintf(&b, "include %s/%s\n", authDir, contract.AuthFileKey)
	return b.String()
}

// authConf is the included file that sets the default user's password and,
// with replicas, the password replicas authenticate to their master with.
func authConf(password string, ha bool) string {
	if ha {
		return "requirepass " + password + "\nmasterauth " + password + "\n"
	}
	return "requirepass " + password + "\n"
}

// maxmemoryFor returns Redis's maxmemory for a container memory limit: 75% of
// it, rounded down to whole MiB when the limit allows. The rest is headroom the
// kernel counts against the limit but maxmemory does not: the copy-on-write
// pages of the child that writes RDB snapshots and rewrites the AOF, client
// query and output buffers, and allocator fragmentation. Without it a busy
// Redis is OOM-killed instead of evicting keys.
func maxmemoryFor(limit int64) int64 {
	mm := limit / 4 * 3
	if mm >= 64<<20 {
		mm = mm / (1 << 20) * (1 << 20)
	}
	return mm
}

// redisBytes writes a byte count the way redis.conf accepts it (it rejects
// Kubernetes quantities such as 256Mi): whole MiB as "mb" (1024-based in
// Redis), anything else as plain bytes.
func redisBytes(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + "mb"
	}
	return strconv.FormatInt(n, 10)
}
