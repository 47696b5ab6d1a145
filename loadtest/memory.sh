#!/usr/bin/env bash
# The gateway's memory, as issue 24 asks for it: resident memory (RSS) per million members, and
# per idle connection. Prints a table for docs/benchmarks.md.
#
#   loadtest/memory.sh                                   # members 100,000 and 1,000,000; 8,000 connections
#   MEMBERS="100000 500000 1000000" IDLE=4000 loadtest/memory.sh
#
# For each member count: the demo coalition with that many members and no history is seeded on a
# fresh embedded store, the gateway is stopped and started again on it (so the figure is a
# running service's, not the seeding's), left SETTLE seconds (default 10), and its VmRSS read
# from /proc. The RSS per million members is the slope between the smallest and largest count.
# Then, on the smallest store, IDLE connections are opened, each answered once (GET /healthz,
# kept alive) and then silent, and IDLE more that never send a byte: the RSS added, per
# connection, and the kernel's TCP memory beside it (/proc/net/sockstat), which RSS does not
# count. The measurement raises the header-read timeout to 10 minutes so that they stay open;
# with the default (5 s) the gateway closes each such connection 5 s after its last answer or
# its accept. Loopback only. Needs python3 and a file-descriptor limit above IDLE.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS="${MEMBERS:-100000 1000000}"
IDLE="${IDLE:-8000}"
SETTLE="${SETTLE:-10}"
PORT="${PORT:-18480}"
work="$(mktemp -d)"
gw_pid=""
cleanup() {
  [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building (release, once)" >&2
cargo build -q --release -p partners-gateway
gateway=./target/release/partners-gateway

cat >"$work/gateway.toml" <<EOF
[connections]
max = $((3 * IDLE + 100))
per_ip_max = $((3 * IDLE + 100))
header_read_timeout_ms = 600000
EOF

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
tcp_pages() { awk '/^TCP:/ {print $NF}' /proc/net/sockstat; }

start() { # data dir, extra args...; sets gw_pid, and ready_s to the seconds until it answered
  local data=$1
  shift
  local t0
  t0=$(date +%s.%N)
  "$gateway" serve --config "$work/gateway.toml" --data "$data" --listen "127.0.0.1:$PORT" "$@" \
    >>"$work/gateway.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 1 3000); do
    if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      ready_s=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
      return 0
    fi
    kill -0 "$gw_pid" 2>/dev/null || { tail -20 "$work/gateway.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "gateway did not become ready" >&2
  exit 1
}

stop() {
  kill -TERM "$gw_pid"
  wait "$gw_pid" 2>/dev/null || true
  gw_pid=""
}

rows=()
idle_rows=()
ready_s=""
first=""
for m in $MEMBERS; do
  data="$work/m$m"
  echo "== $m members: seeding" >&2
  start "$data" --demo --demo-members "$m" --demo-history-days 0
  seed_s=$ready_s
  stop
  echo "== $m members: started again" >&2
  start "$data"
  open_s=$ready_s
  sleep "$SETTLE"
  rss=$(rss_kb "$gw_pid")
  # The store's own share: its block cache and memtables, from the gateway's gauges.
  token=$(awk -F= '/^OPERATOR_TOKEN=/ {print $2}' "$data/demo-credentials.env")
  metrics=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/metrics")
  gauge() { echo "$metrics" | awk -v g="$1" '$1 == g {printf "%d", $2}'; }
  rows+=("$m $rss $open_s $seed_s $(du -sm "$data" | cut -f1) $(gauge ledger_store_cache_bytes) $(gauge ledger_store_memtable_bytes)")
  if [ -z "$first" ]; then
    first=$m
    # Idle connections on the smallest store.
    cat >"$work/idle.py" <<'EOF'
import socket, sys
port, n, ask = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "ask"
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if ask:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("closed before an answer")
            got += chunk
        if not got.startswith(b"HTTP/1.1 200"):
            sys.exit(f"unexpected answer {got[:40]!r}")
    held.append(s)
print("open", flush=True)
sys.stdin.readline()
for s in held:
    s.close()
EOF
    for kind in ask silent; do
      before=$(rss_kb "$gw_pid")
      tcp_before=$(tcp_pages)
      coproc IDLER { python3 "$work/idle.py" "$PORT" "$IDLE" "$kind"; }
      read -r line <&"${IDLER[0]}"
      [ "$line" = open ] || { echo "idle connections failed: $line" >&2; exit 1; }
      sleep 2
      after=$(rss_kb "$gw_pid")
      tcp_after=$(tcp_pages)
      echo close >&"${IDLER[1]}"
      wait "$IDLER_PID" || true
      sleep 2
      idle_rows+=("$kind $before $after $tcp_before $tcp_after")
    done
  fi
  stop
done

python3 - "$IDLE" "${rows[@]}" -- "${idle_rows[@]}" <<'EOF'
import sys
args = sys.argv[1:]
idle = int(args[0])
cut = args.index("--")
rows = [r.split() for r in args[1:cut]]
idles = [r.split() for r in args[cut + 1:]]
print("| members | RSS after a restart | of it the store's block cache | and memtables | ready after | seeding took | store on disk |")
print("|---|---|---|---|---|---|---|")
for m, rss, open_s, seed_s, mb, cache, mem in rows:
    print(f"| {int(m):,} | {int(rss) / 1024:,.0f} MB | {int(cache) / 2**20:,.0f} MB | {int(mem) / 2**20:,.0f} MB "
          f"| {float(open_s):.2f} s | {float(seed_s):.2f} s | {int(mb):,} MB |")
if len(rows) >= 2:
    a, b = rows[0], rows[-1]
    members = int(b[0]) - int(a[0])
    per = (int(b[1]) - int(a[1])) * 1024 / members
    store = (int(b[5]) + int(b[6]) - int(a[5]) - int(a[6])) / members
    print(f"\nRSS per member: {per:,.0f} bytes ({per:,.0f} MB per million members), "
          f"{per - store:,.0f} bytes without the store's cache and memtables, "
          f"between {int(a[0]):,} and {int(b[0]):,}")
print(f"\n| {idle:,} connections | RSS before | RSS while open | per connection | kernel TCP memory while open |")
print("|---|---|---|---|---|")
names = {"ask": "answered once, then idle", "silent": "never sent a byte"}
for kind, before, after, tb, ta in idles:
    per = (int(after) - int(before)) * 1024 / idle
    print(f"| {names[kind]} | {int(before) / 1024:,.0f} MB | {int(after) / 1024:,.0f} MB | "
          f"{per:,.0f} bytes | {(int(ta) - int(tb)) * 4:,} kB |")
EOF
