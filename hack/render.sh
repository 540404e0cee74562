#!/usr/bin/env bash
# render.sh (`make render`) renders both example XRs with the real crossplane CLI
# against the function run locally, exactly as a developer would by hand:
#
#   go run ./cmd/function --insecure
#   crossplane render examples/function/xr.yaml examples/function/composition.yaml examples/function/functions.yaml
#
# It builds the pinned crossplane CLI and core with hack/tools.sh (slow the first
# time), runs core as a local binary instead of in Docker (--crossplane-binary),
# starts the function on a free loopback port (FUNCTION_PORT, default 9443 or the
# next free one) and stops it on exit. Extra arguments go to every render, e.g.
# `hack/render.sh -r` to include the function's results.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

crossplane="$(hack/tools.sh crossplane)/crossplane"
core="$(hack/tools.sh core)/crossplane-core"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port="${FUNCTION_PORT:-9443}"
if [[ -z "${FUNCTION_PORT:-}" ]]; then
	while listening "$port"; do port=$((port + 1)); done
elif listening "$port"; then
	echo "port $port is already in use" >&2
	exit 1
fi

tmp="$(mktemp -d)"
pid=""
cleanup() {
	if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# `go run` would leave its child running when stopped: build, then run the binary.
go build -o "$tmp/function" ./cmd/function
"$tmp/function" --insecure --address="127.0.0.1:$port" --metrics-address= >"$tmp/function.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	listening "$port" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "the function exited before listening on 127.0.0.1:$port:" >&2
		cat "$tmp/function.log" >&2
		exit 1
	fi
	sleep 0.1
done
listening "$port" || { echo "the function did not listen on 127.0.0.1:$port" >&2; cat "$tmp/function.log" >&2; exit 1; }

render() {
	local xr="$1" composition="$2" xrd="$3"
	shift 3
	echo "# crossplane render $xr $composition examples/function/functions.yaml"
	"$crossplane" render "$xr" "$composition" examples/function/functions.yaml \
		--xrd="$xrd" --crossplane-binary="$core" \
		--function-annotations="render.crossplane.io/runtime-development-target=127.0.0.1:$port" "$@"
}

render examples/function/xr.yaml examples/function/composition.yaml package/configuration/xrd.yaml "$@"
render examples/function/xr-namespaced.yaml examples/function/composition-namespaced.yaml package/configuration-namespaced/xrd.yaml "$@"
