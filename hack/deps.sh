#!/usr/bin/env bash
# deps.sh installs the system packages the tests run for real (redis-server,
# redis-cli) when they are missing. Safe to run again.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v ip >/dev/null; then exit 0; fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo=sudo; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server redis-tools iproute2 >/dev/null
# The Debian package starts a system redis on 6379; our tests start their own.
$sudo systemctl disable --now redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
