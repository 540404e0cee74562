package fn

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// prepareDataContainer is the name of the init container that makes the data
// directory match the persistence redis.conf asks for before Redis starts.
const prepareDataContainer = "prepare-data"

// checksumEnv holds, in prepare-data, the checksum of the configuration
// composed for the pod (its template's checksumAnno, by the downward API).
const checksumEnv = "REDISHTTP_CONFIG_CHECKSUM"

// prepareDataScript runs before redis-server, with the image's own sh,
// redis-server and redis-cli, and redis.conf's path as $1; every other path
// comes from redis.conf (dir, appenddirname, appendfilename, dbfilename), so
// the same script runs in the container and in tests. It exists because a
// change of spec.persistence.appendOnly would otherwise lose data:
//
//   - AOF switched on: Redis 7 started with "appendonly yes" and no AOF loads
//     nothing, though a dump.rdb lies beside it, and its next save overwrites
//     that RDB with the empty dataset. So when the AOF's manifest is absent
//     and an RDB exists, the script loads the RDB with AOF off, switches AOF
//     on at runtime (CONFIG SET appendonly yes: Redis writes the base AOF from
//     memory) and waits until that rewrite has finished.
//   - AOF switched off: Redis started with "appendonly no" loads dump.rdb,
//     which is stale (or absent) when the AOF held the data. So when a
//     manifest exists, the script loads the AOF, writes the RDB from it
//     (SAVE) and removes the AOF, which would otherwise be loaded, stale,
//     once AOF is switched on again.
//
// Either way the server it starts listens on a unix socket in the data
// directory only (no TCP port: no client can write meanwhile) and is shut
// down before the real one starts. A failure exits non-zero, so the pod
// retries with the data untouched. Without a change it only reads redis.conf.
//
// First of all, when checksumEnv is set, it waits until redis.conf and every
// file redis.conf includes end with that checksum (stamp): a pod never starts
// with a configuration other than the one composed for it.
const prepareDataScript = `set -eu
conf="$1"
if [ -n "${` + checksumEnv + `:-}" ]; then
  stamp="` + stampPrefix + `$` + checksumEnv + `"
  stamped() { grep -qxF "$stamp" "$1" 2>/dev/null; }
  current() {
    stamped "$conf" || return 1
    for f in $(sed -n 's/^include //p' "$conf"); do stamped "$f" || return 1; done
  }
  n=0
  until current; do
    [ $n -gt 0 ] || echo "prepare-data: waiting for the configuration composed for this pod (checksum $` + checksumEnv + `): its ConfigMap or Secret volume still holds another one"
    n=$((n+1)); sleep 1
  done
  [ $n = 0 ] || echo "prepare-data: the configuration composed for this pod arrived after $n s"
fi
get() { v="$(sed -n "s/^$1 //p" "$conf" | tail -n 1)"; echo "${v:-$2}"; }
dir="$(get dir .)"
aofdir="$dir/$(get appenddirname appendonlydir)"
manifest="$aofdir/$(get appendfilename appendonly.aof).manifest"
rdb="$dir/$(get dbfilename dump.rdb)"
sock="$dir/prepare-data.sock"
cli() { redis-cli -s "$sock" "$@" 2>&1; }
start() {
  redis-server "$conf" --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" --appendonly "$1" &
  pid=$!
  while :; do
    r="$(cli ping || true)"
    case "$r" in
      PONG) return 0 ;;
      LOADING*|"Could not connect"*) kill -0 "$pid" 2>/dev/null || { echo "prepare-data: redis-server exited"; exit 1; }; sleep 0.2 ;;
      *) echo "prepare-data: $r"; kill "$pid"; wait "$pid" || true; exit 1 ;;
    esac
  done
}
stop() { cli shutdown nosave >/dev/null || true; wait "$pid"; }
if [ "$(get appendonly no)" = yes ]; then
  if [ ! -f "$manifest" ] && [ -s "$rdb" ]; then
    echo "prepare-data: appendonly is on and there is no AOF yet: writing it from $rdb"
    start no
    r="$(cli config set appendonly yes)"
    [ "$r" = OK ] || { echo "prepare-data: CONFIG SET appendonly yes: $r"; stop; exit 1; }
    while :; do
      i="$(cli info persistence | tr -d '\r')"
      case "$i" in *aof_rewrite_in_progress:0*aof_rewrite_scheduled:0*) break ;; esac
      sleep 0.2
    done
    case "$i" in *aof_last_bgrewrite_status:ok*) ;; *) echo "prepare-data: the AOF rewrite failed"; stop; exit 1 ;; esac
    stop
    [ -f "$manifest" ] || { echo "prepare-data: no AOF manifest after the rewrite"; exit 1; }
    echo "prepare-data: AOF written"
  fi
elif [ -f "$manifest" ]; then
  echo "prepare-data: appendonly is off and an AOF exists: writing $rdb from it, then removing it"
  start yes
  r="$(cli save)"
  [ "$r" = OK ] || { echo "prepare-data: SAVE: $r"; stop; exit 1; }
  stop
  rm -rf "$aofdir"
  echo "prepare-data: RDB written, AOF removed"
fi
`

// PrepareDataCommand is prepare-data's command for a redis.conf at conf,
// exported for the tests that run it against a real redis-server.
func PrepareDataCommand(conf string) []string {
	return []string{"sh", "-c", prepareDataScript, prepareDataContainer, conf}
}

// prepareData is the init container that runs prepareDataScript with the
// Redis container's image, environment (the password redis-cli needs),
// resources (it loads the whole dataset), security context and mounts.
func prepareData(redis corev1.Container) corev1.Container {
	return corev1.Container{
		Name:    prepareDataContainer,
		Image:   redis.Image,
		Command: PrepareDataCommand(configFile),
		Env: append(slices.Clone(redis.Env), corev1.EnvVar{Name: checksumEnv, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + checksumAnno + "']"},
		}}),
		Resources:       redis.Resources,
		SecurityContext: redis.SecurityContext,
		VolumeMounts:    redis.VolumeMounts,
	}
}

// savesOnlyOnStop reports whether Redis runs with neither RDB snapshots nor
// AOF, on one pod: the tenant switched persistence off. Such a Redis still
// writes one RDB when it is stopped (shutdown-on-sigterm save), so a restart
// the tenant asked for (a memory, config or version change, a node drain)
// keeps the keys, and noPersistenceScript loads that RDB once only. Replicas
// keep the data of a master without persistence; their restarts need neither.
func savesOnlyOnStop(p *params) bool { return !p.RDB && !p.AppendOnly && !p.HA() }

// noPersistenceRDB is the RDB a Redis without persistence writes when it
// stops: redis.conf's dbfilename is managed (never a tenant's), so the
// default name in the data directory.
const noPersistenceRDB = dataDir + "/dump.rdb"

// noPersistenceScript starts Redis when savesOnlyOnStop. The RDB written at
// the last stop must be loaded once: after a crash (an OOM kill, kill -9, a
// lost node) a Redis without persistence starts empty, never with the
// dataset of its last clean stop, where keys deleted since would come back.
// A container that crashed is restarted without its pod's init containers,
// so the check runs here, before every start of redis-server: an RDB that is
// the very file recorded at the previous start (inode, size, modification
// time; every save writes a new file and renames it) was not written since it
// was loaded, so Redis did not stop cleanly, and the file goes. $1 is
// redis.conf's path.
var noPersistenceScript = fmt.Sprintf(`set -eu
rdb="%s"
seen="%s/.redishttp-loaded"
if [ -f "$rdb" ]; then
  id="$(stat -c '%%i %%s %%Y' "$rdb")"
  if [ -f "$seen" ] && [ "$(cat "$seen")" = "$id" ]; then
    echo "redis: persistence is off and $rdb was loaded before and not written since (Redis did not stop cleanly): starting empty"
    rm -f "$rdb" "$seen"
  else
    printf '%%s\n' "$id" > "$seen"
  fi
else
  rm -f "$seen"
fi
exec redis-server "$1"
`, noPersistenceRDB, dataDir)
