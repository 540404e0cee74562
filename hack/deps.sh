#!/usr/bin/env bash
# deps.sh installs the system packages the tests run for real (redis-server,
# redis-cli) when they are missing. Safe to run again.
#   hack/deps.sh compat   also what `make compat` needs (curl; npm, which brings bun)
#   hack/deps.sh bench    also what `make bench-gateway` needs (webdis, wrk)
set -euo pipefail
pkgs=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server redis-tools)
command -v ip >/dev/null || pkgs+=(iproute2)
# nft: the pod runner cuts a pod's network (tests inject partitions).
command -v nft >/dev/null || pkgs+=(nftables)
# The exporter the pod runner runs as the monitoring sidecar (the Debian build
# of oliver006/redis_exporter), and promtool for the alert rules' unit tests.
command -v prometheus-redis-exporter >/dev/null || pkgs+=(prometheus-redis-exporter)
command -v promtool >/dev/null || pkgs+=(prometheus)
for extra in "$@"; do
  case "$extra" in
    compat)
      command -v curl >/dev/null || pkgs+=(curl)
      command -v npm >/dev/null || pkgs+=(npm) ;;
    bench)
      command -v curl >/dev/null || pkgs+=(curl)
      command -v webdis >/dev/null || pkgs+=(webdis)
      command -v wrk >/dev/null || pkgs+=(wrk) ;;
    *) echo "deps.sh: unknown extra $extra (want compat or bench)" >&2; exit 2 ;;
  esac
done
if [[ ${#pkgs[@]} == 0 ]]; then exit 0; fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo=sudo; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
# The Debian packages start a system redis on 6379 (webdis on 7379, Prometheus
# on 9090, the exporter on 9121); our tests and benchmarks start their own.
for svc in redis-server webdis prometheus prometheus-redis-exporter; do
  $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || $sudo service "$svc" stop >/dev/null 2>&1 || true
done
