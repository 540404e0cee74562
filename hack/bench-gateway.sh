#!/usr/bin/env bash
# bench-gateway: requests/s and p50/p99 of the gateway (cmd/gateway) side by
# side with webdis and raw redis-benchmark, against the same redis-server, at
# the same concurrency, in one run. Ratios are what to read: machines are
# noisy. Not a test; nothing passes or fails on a figure.
#   GET    gateway GET /get/k (Bearer token of an ACL user: identity per request)
#          webdis  GET /GET/k (one fixed login per connection)
#          redis-benchmark -t get
#   /pipeline of 100 GETs: gateway commands/s next to redis-benchmark -P 100.
# The GET pair runs BENCH_ROUNDS times, gateway and webdis alternating, and
# the median ratio is reported: load from other processes comes and goes.
# Knobs: BENCH_CONNECTIONS (32), BENCH_SECONDS (10), BENCH_THREADS (2),
# BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${BENCH_CONNECTIONS:-32}
secs=${BENCH_SECONDS:-10}
threads=${BENCH_THREADS:-2}
rounds=${BENCH_ROUNDS:-3}
out=_output/bench-gateway
rm -rf "$out" && mkdir -p "$out"
abs="$PWD/$out"

# shellcheck source=hack/procs.sh
source hack/procs.sh

password=$(random_secret)
key=$(random_secret)
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --requirepass "$password" --save "" --appendonly no \
  --dir "$abs" --logfile "$abs/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$rport" -a "$password" --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.1; done
rcli() { redis-cli -p "$rport" -a "$password" --no-auth-warning "$@"; }
rcli ACL SETUSER bench on ">$key" '~*' '&*' +@all -@dangerous >/dev/null
rcli SET k "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null

go build -o "$out/gateway" ./cmd/gateway
gport=$(free_port)
mport=$(free_port)
"$out/gateway" --redis-address="127.0.0.1:$rport" --address="127.0.0.1:$gport" --metrics-address="127.0.0.1:$mport" >"$out/gateway.log" 2>&1 &
pids+=($!)
wport=$(free_port)
cat >"$out/webdis.json" <<JSON
{"redis_host": "127.0.0.1", "redis_port": $rport, "redis_auth": "$password",
 "http_host": "127.0.0.1", "http_port": $wport, "threads": $threads, "pool_size": $conns,
 "daemonize": false, "verbosity": 0, "logfile": "$abs/webdis.log"}
JSON
webdis "$out/webdis.json" &
pids+=($!)
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$wport/GET/k" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(printf 'bench:%s' "$key" | base64 -w0 | tr '+/' '-_' | tr -d '=')

# wrk prints one RESULT line: requests/s, p50 and p99 in ms, non-2xx count.
body=$(printf '["GET","k"],%.0s' $(seq 100)); body="[${body%,}]"
cat >"$out/wrk.lua" <<LUA
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
if os.getenv("BENCH_PIPELINE") == "1" then
  wrk.method = "POST"
  wrk.body = '$body'
  wrk.headers["Content-Type"] = "application/json"
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.3f %.3f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA
wrk_run() { # name url token pipeline
  BENCH_TOKEN="$3" BENCH_PIPELINE="$4" wrk -t1 -c8 -d2s -s "$out/wrk.lua" "$2" >/dev/null # warm-up
  BENCH_TOKEN="$3" BENCH_PIPELINE="$4" wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$out/wrk.lua" "$2" | awk -v n="$1" '/^RESULT/{print n, $2, $3, $4, $5}'
}
# redis-benchmark --csv: "test","rps","avg","min","p50","p95","p99","max".
rb_run() { # name pipeline
  redis-benchmark -p "$rport" -a "$password" -c "$conns" -n $((secs * 40000 / $2 * $2)) -P "$2" -t get --csv 2>/dev/null |
    awk -F'"' -v n="$1" '$2=="GET"{printf "%s %.0f %.3f %.3f 0\n", n, $4, $10, $14}'
}

echo "bench-gateway: $conns connections, ${secs}s per run, wrk -t$threads, $rounds rounds; redis-server $(redis-server --version | awk '{print $3}'), webdis $(dpkg-query -W -f='${Version}' webdis 2>/dev/null || echo '?')"
{
  for r in $(seq "$rounds"); do
    wrk_run "gateway-get#$r" "http://127.0.0.1:$gport/get/k" "$token" 0
    wrk_run "webdis-get#$r" "http://127.0.0.1:$wport/GET/k" "" 0
  done
  rb_run redis-benchmark-get 1
  wrk_run gateway-pipeline100 "http://127.0.0.1:$gport/pipeline" "$token" 1
  rb_run redis-benchmark-get-P100 100
} | tee "$out/results.txt" | awk '{printf "  %-26s %10s req/s  p50 %7s ms  p99 %7s ms  errors %s\n", $1, $2, $3, $4, $5}'

awk '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { rps[$1]=$2; p50[$1]=$3; p99[$1]=$4; err+=$5 }
  /^gateway-get#/ { split($1, k, "#"); n++; rr[n] = $2 / 1; gr[k[2]] = $2; gp[k[2]] = $4 }
  /^webdis-get#/  { split($1, k, "#"); wr[k[2]] = $2; wp[k[2]] = $4 }
  END {
    for (i = 1; i <= n; i++) { q[i] = gr[i] / wr[i]; l[i] = gp[i] / wp[i]; g[i] = gr[i]; s = s sprintf(" %.2f", q[i]) }
    printf "ratios:\n"
    printf "  GET       gateway/webdis req/s %.2fx median of%s (target >= 0.75x), p99 %.2fx median (target <= 2x)\n", median(q, n), s, median(l, n)
    printf "  GET       gateway/redis-benchmark req/s %.2fx (gateway median)\n", median(g, n) / rps["redis-benchmark-get"]
    printf "  pipeline  gateway commands/s %.0f = %.2fx redis-benchmark -P 100 (target >= 0.2x)\n", rps["gateway-pipeline100"]*100, rps["gateway-pipeline100"]*100/rps["redis-benchmark-get-P100"]
    if (err > 0) { printf "bench-gateway: %d requests failed; figures are not valid\n", err; exit 1 }
  }' "$out/results.txt"
