#!/usr/bin/env bash
# The property-based API tester: schemathesis against /openapi.json of a demo gateway on
# loopback, every request signed like a partner's (hooks.py); then openapi-python-client builds
# a whole client from the same document and must not warn. Exits non-zero on any disagreement.
#
#   partners-gateway/tests/api-tester/run.sh [EXAMPLES_PER_OPERATION]
#
# Needs python3 with venv; installs pinned schemathesis and openapi-python-client into
# target/api-tester-venv. The seed is fixed, so a run is reproducible.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../../.." && pwd)"
examples="${1:-25}"
venv="$top/target/api-tester-venv"
port=18181
work="$(mktemp -d)"
trap 'kill "${gateway:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis==4.32.5 openapi-python-client==0.29.1 ruff==0.14.6
fi
# The same build `cargo test --workspace` makes (its features unified with the tests'), so CI
# reuses it instead of compiling every dependency a second time.
cargo test -q --workspace --no-run
"$top/target/debug/partners-gateway" serve --demo --demo-members 200 --data "$work/data" \
  --listen "127.0.0.1:$port" > "$work/gateway.log" 2>&1 &
gateway=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/openapi.json" > "$work/openapi.json"

export API_TESTER_CREDENTIALS="$work/data/demo-credentials.env"
export SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here"
run() {
  "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run \
    "http://127.0.0.1:$port/openapi.json" --checks all --exclude-checks ignored_auth \
    --phases examples,coverage,fuzzing --max-examples "$examples" --seed 1 --no-color "$@"
}
# The partner API first: the operator pass changes partners' request rates.
echo "== schemathesis: partner API"
run --include-path-regex '^/v1/' | tee "$work/schemathesis.log"
echo "== schemathesis: operator and service API"
run --exclude-path-regex '^/v1/' | tee -a "$work/schemathesis.log"
cases=$(grep -oE '[0-9]+ generated, [0-9]+ passed' "$work/schemathesis.log" | awk '{s += $3} END {print s + 0}')

echo "== openapi-python-client: a whole client, no warnings"
(cd "$work" && PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
  --path openapi.json --output-path client > generate.log 2>&1) || { cat "$work/generate.log"; exit 1; }
if grep -qi "warning" "$work/generate.log"; then
  cat "$work/generate.log"
  exit 1
fi
test -f "$work"/client/*/api/partner/batch.py
echo "api tester: OK"
echo "api-tester: $cases passed, 0 failed"
