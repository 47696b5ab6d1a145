#!/usr/bin/env bash
# The browser journeys (journeys.mjs) against a demo gateway with a year of history, in
# Debian's chromium. Installs chromium (apt) and the pinned npm packages when missing.
#   partners-gateway/web/tests/run.sh [GATEWAY_BINARY]
set -euo pipefail
web="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$web/../.." && pwd)"
if ! command -v chromium >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-core
fi
(cd "$web" && npm ci --no-audit --no-fund --silent)
(cd "$web" && node tests/vendor.mjs --check)
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build -q -p partners-gateway
  bin="$root/target/debug/partners-gateway"
fi
data="$(mktemp -d)"
log="$data/gateway.log"
port_file="$data/port"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
"$bin" serve --demo --demo-members 400 --demo-history-days 365 --data "$data/store" \
  --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q "demo coalition ready" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
grep -q "demo coalition ready" "$log" || { echo "the demo did not start"; cat "$log"; exit 1; }
url="$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')"
echo "demo gateway at $url"
GATEWAY="$url" CREDENTIALS="$data/store/demo-credentials.env" node "$web/tests/journeys.mjs"
