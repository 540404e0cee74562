package backup

import (
	"fmt"
	"regexp"
	"strconv"
)

// rdbFormats is the newest RDB format each Redis release line writes, and so
// the newest it loads (rdb.h RDB_VERSION): a Redis refuses a newer format at
// start ("Can't handle RDB format version"). Lines after the last one read at
// least its format.
var rdbFormats = []struct {
	major, minor int
	rdb          int
}{
	{6, 0, 9},
	{6, 2, 9},
	{7, 0, 10},
	{7, 2, 11},
	{7, 4, 12},
}

var versionRE = regexp.MustCompile(`^(\d{1,4})\.(\d{1,4})(?:\.\d{1,6})?(?:[-.].*)?$`)

// readsUpTo returns the newest RDB format a Redis version (7.2, 7.0.15,
// 7.2-alpine...) loads, and false when that is unknown: not a version, older
// than every line known, or newer than the last (it reads at least as much
// as this package's reader does).
func readsUpTo(version string) (int, bool) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return 0, false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	last := rdbFormats[len(rdbFormats)-1]
	if major > last.major || (major == last.major && minor > last.minor) {
		return 0, false
	}
	rdb, known := 0, false
	for _, f := range rdbFormats {
		if major > f.major || (major == f.major && minor >= f.minor) {
			rdb, known = f.rdb, true
		}
	}
	return rdb, known
}

// checkLoads returns an *Error when a Redis of version target cannot load
// an RDB of format rdb (made by Redis made): a newer Redis's backup into an
// older Redis.
func checkLoads(target string, rdb int, made string) error {
	newest, known := readsUpTo(target)
	if !known || rdb <= newest {
		return nil
	}
	if made == "" {
		made = "a newer Redis"
	} else {
		made = "Redis " + made
	}
	return &Error{Reason: ReasonRedisTooOld, Err: fmt.Errorf(
		"it was made by %s (RDB format %d) and this instance runs Redis %s, which loads RDB formats up to %d: restore it into an instance with spec.redisVersion at least as new as the backup's",
		made, rdb, target, newest)}
}
