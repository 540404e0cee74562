# procs.sh: helpers for scripts that start local servers on loopback (make
# compat, make bench-gateway). Source it after `set -euo pipefail`.

# free_port prints a TCP port nothing listens on at 127.0.0.1.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# random_secret prints an alphanumeric secret (passwords, keys).
random_secret() { head -c 18 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9'; }

# Every server a script starts goes into pids; they are killed when it exits.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
