#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20: CI's smoke run; a soak is
# `partners-gateway/fuzz/run.sh 3600`), from the committed corpus, and fails on the first crash.
#
#   partners-gateway/fuzz/run.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz if missing. The targets are built with coverage instrumentation and debug
# assertions (so an arithmetic overflow is a crash), without a sanitizer; on a stable toolchain
# RUSTC_BOOTSTRAP=1 admits the instrumentation flags. New inputs go to a scratch corpus, so the
# committed one changes only by hand (`cargo fuzz cmin`).
#
# FUZZ_PROFILE=dev builds without optimisation: CI's smoke run does, since an optimised build of
# the gateway with one codegen unit took 9-10 of CI's minutes on a 2-core machine and an
# unoptimised one under 4, while 20 s a target still replays the whole corpus and explores past
# it. A soak keeps the default, optimised (more inputs a second).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-20}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz@0.13.2
export RUSTC_BOOTSTRAP=1
cd "$here"
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi
mode=()
[[ "${FUZZ_PROFILE:-release}" == dev ]] && mode=(--dev)
cargo fuzz build -s none --debug-assertions "${mode[@]}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t"
  echo "== fuzz $t for ${seconds}s"
  if ! cargo fuzz run -s none --debug-assertions "${mode[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 > "$scratch/$t.log" 2>&1; then
    tail -n 40 "$scratch/$t.log"
    echo "fuzz target $t crashed; the input is in $here/artifacts/$t (make it a test)"
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$scratch/$t.log" | tr '\n' ' '
  echo
done
