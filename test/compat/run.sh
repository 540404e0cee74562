#!/usr/bin/env bash
# compat: run the official @upstash/redis test suite (test/compat/*.tar.gz,
# redis-js commit 777dc305, MIT) plus an @upstash/ratelimit check against
# cmd/gateway in front of a real redis-server of its own, then compare the
# failures with exclusions.txt. Needs redis-server, Go and npm (bun comes from
# npm). Ports are free loopback ports; never 8080 (pkg/http.test.ts binds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=test/compat
out=_output/compat
abs_out="$PWD/$out"
rm -rf "$out" && mkdir -p "$out"
tar -xzf "$here"/upstash-redis-js-777dc305.tar.gz -C "$out"
suite="$out/redis-js/packages/redis"
cp "$here"/ratelimit.test.ts "$suite"/pkg/redishttp-ratelimit.test.ts

# shellcheck source=hack/procs.sh
source hack/procs.sh

redis_port=$(free_port)
password=$(random_secret)
redis-server --port "$redis_port" --bind 127.0.0.1 --requirepass "$password" --save "" \
  --appendonly no --dir "$abs_out" --logfile "$abs_out/redis.log" &
pids+=($!)
go build -o "$out/gateway" ./cmd/gateway
gw_port=$(free_port)
metrics_port=$(free_port)
"$out/gateway" --redis-address="127.0.0.1:$redis_port" --address="127.0.0.1:$gw_port" \
  --metrics-address="127.0.0.1:$metrics_port" >"$out/gateway.log" 2>&1 &
pids+=($!)
# Up to a minute: a deadline for a hung start, not a measure (the machine may
# be busy).
for _ in $(seq 600); do
  curl -fsS "http://127.0.0.1:$metrics_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$metrics_port/readyz" >/dev/null

echo "compat: installing bun and the suite's dependencies from npm"
(cd "$suite" && npm i --no-audit --no-fund --no-save --loglevel=error \
  uncrypto@0.1.3 @types/bun@1.3.6 bun@1.4.4 @upstash/ratelimit@2.2.0 >/dev/null)

token=$(printf 'default:%s' "$password" | base64 -w0 | tr '+/' '-_' | tr -d '=')
echo "compat: running the @upstash/redis suite against the gateway on 127.0.0.1:$gw_port (about 90 s)"
(cd "$suite" && UPSTASH_REDIS_REST_URL="http://127.0.0.1:$gw_port" UPSTASH_REDIS_REST_TOKEN="$token" \
  npx bun test pkg --timeout 20000 >"$abs_out/bun.log" 2>&1) || true
log="$out/bun.log"

# bun prints each file's name, then its tests' results; a summary repeating
# the failures follows "N tests failed:", which is not read.
awk '/^[0-9]+ tests (failed|skipped):$/{exit}
     /^pkg\/.*\.test\.ts:$/{f=substr($0,1,length($0)-1)}
     /^\((pass|fail|skip)\) /{s=substr($1,2,4); sub(/^\([a-z]+\) /,""); sub(/ \[[0-9.]+m?s\]$/,""); print s"\t"f"\t"$0}' \
  "$log" >"$out/results.tsv"
grep -v '^#' "$here/exclusions.txt" | grep -v '^[[:space:]]*$' |
  awk -F' [|] ' '{print $1"\t"$2}' >"$out/exclusions.tsv"

awk -F'\t' -v report="$out/report.txt" '
  FNR==NR { ex[$1"\t"$2]=1; if ($2=="*") file[$1]=1; next }
  { excluded = ($2"\t"$3 in ex) || ($2 in file) }
  $1=="pass" && !excluded { pass++ }
  $1=="pass" && excluded && !($2 in file) { pass++; print "excluded but passed: "$2" | "$3 > report }
  $1=="pass" && excluded && ($2 in file) { pass++ }
  $1=="skip" { skip++ }
  $1=="fail" && excluded { exfail++ }
  $1=="fail" && !excluded { fail++; print "FAILED: "$2" | "$3 > report }
  END {
    printf "compat: %d passed, %d failed, %d excluded (failing for reasons listed in test/compat/exclusions.txt), %d skipped by the suite\n", pass, fail, exfail, skip
    exit fail > 0
  }' "$out/exclusions.tsv" "$out/results.tsv" && rc=0 || rc=$?
[[ -f "$out/report.txt" ]] && cat "$out/report.txt"
if [[ $(wc -l <"$out/results.tsv") -lt 800 ]]; then
  echo "compat: bun ran only $(wc -l <"$out/results.tsv") tests; see $log" >&2
  exit 1
fi
[[ $rc == 0 ]] || echo "compat: failures outside the exclusion list; the full log is $log" >&2
exit "$rc"
