#!/usr/bin/env bash
# An A/B of the committer bench: two builds run in alternating pairs (A B, then B A, ...), each
# run on a fresh store, and the medians of both sides with their ratio. This is how a change on
# the hot path shows its effect on this shared, noisy machine: the two sides meet the same
# phases, and the spread of each side is printed beside its median.
#
#   loadtest/ab-committer.sh BASE NEW [PAIRS]
#
# BASE and NEW are committer bench binaries. Make one from each build with
#   cargo bench -p ledger --bench committer --no-run
# and copy the executable it names (target/release/deps/committer-<hash>) aside, e.g. build the
# base with the change stashed (`git stash -u`), copy it, `git stash pop`, build again.
# PAIRS defaults to 6. Each run: BENCH_MEMBERS (default 1,000,000) members, batch 1,000, the
# programme on, BENCH_SECONDS (default 10) s measured; about 20 s a run with its seed and warm-up.
#
# Per run it records transactions/s, commit p99, the process's CPU a transaction, and the CPU a
# transaction of the writer, syncer, projector and fjall's worker threads (each thread's share
# of one core over the rate). Loopback and local disk only.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
base=$(realpath "$1")
new=$(realpath "$2")
pairs="${3:-6}"
for b in "$base" "$new"; do
  [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: >"$work/runs"
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do
    bin=$base
    [ "$side" = B ] && bin=$new
    echo "== pair $i of $pairs: $side" >&2
    rm -rf "$work/store"
    BENCH_DIR="$work/store" BENCH_MEMBERS="${BENCH_MEMBERS:-1000000}" \
      BENCH_SECONDS="${BENCH_SECONDS:-10}" BENCH_RUNS=1 BENCH_BATCHES=1000 BENCH_PROGRAMME=1 \
      "$bin" --bench >"$work/out" 2>"$work/err" || {
      cat "$work/err" >&2
      exit 1
    }
    row=$(grep '^| 1000 |' "$work/out")
    threads=$(grep 'CPU by thread' "$work/err" | sed 's/.*core): //')
    printf '%s\t%s\t%s\n' "$side" "$row" "$threads" >>"$work/runs"
  done
done
rm -rf "$work/store"

python3 - "$work/runs" "$base" "$new" <<'EOF'
import re, statistics, sys
runs, base, new = sys.argv[1:4]
threads = [("writer", "ledger-committe"), ("syncer", "ledger-syncer"),
           ("projector", "ledger-projecto"), ("fjall worker", "fjall:worker")]
cols = ["tx/s", "commit p99 ms", "process CPU µs/tx"] + [f"{n} µs/tx" for n, _ in threads]
sides = {"A": [], "B": []}
for line in open(runs):
    side, row, cpu = line.rstrip("\n").split("\t", 2)
    f = [x.strip() for x in row.split("|")]
    # "| batch | tx/s | legs/s | mean batch | p50 | p99 | max | CPU µs/tx | runs |"
    rate, p99, proc = float(f[2]), float(f[6].split()[0]), float(f[8])
    share = {m.group(1): float(m.group(2)) for m in re.finditer(r"([\w:-]+) (\d+)%", cpu)}
    per = [share.get(t, float("nan")) / 100 / rate * 1e6 for _, t in threads]
    sides[side[0]].append([rate, p99, proc] + per)
med = {s: [statistics.median(r[i] for r in v) for i in range(len(cols))] for s, v in sides.items()}
print(f"A: {base}\nB: {new}\n{len(sides['A'])} pairs, alternating; medians, B over A, then every run\n")
print("| | A | B | B/A |")
print("|---|---|---|---|")
for i, c in enumerate(cols):
    a, b = med["A"][i], med["B"][i]
    fmt = "{:,.0f}" if i == 0 else "{:.2f}"
    print(f"| {c} | {fmt.format(a)} | {fmt.format(b)} | {b / a:.3f} |")
print()
for s in "AB":
    print(f"{s} tx/s: " + ", ".join(f"{r[0]:,.0f}" for r in sides[s]))
EOF
