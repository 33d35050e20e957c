#!/usr/bin/env bash
# Runs a benchmark program in release mode: engine | controls | pr | ui | store | lookup.
# The store and lookup benchmarks get their own emulator; the lookup benchmark installs
# wrk and nginx from Debian and builds the release binaries and the Lambda bootstraps it runs
# (DISPATCHER_BASELINE_LOOKUP: another lookup binary to compare cold starts with;
# DISPATCHER_BASELINE_SERVE: another dispatcher binary whose serve is loaded beside ours).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  engine) cargo run --release --locked -p dispatcher-tests --bin bench-engine ;;
  controls) cargo run --release --locked -p dispatcher-tests --bin bench-controls ;;
  pr) cargo run --release --locked -p dispatcher-tests --bin bench-pr ;;
  ui) cargo run --release --locked -p dispatcher-tests --bin bench-ui ;;
  store)
    trap './infra/emulator.sh stop "${MOTO_PID:-}" "${MOTO_DIR:-}"' EXIT
    # Captured first: `eval "$(... start)"` would carry on after a failed start.
    out=$(./infra/emulator.sh start)
    eval "$out"
    cargo run --release --locked -p dispatcher-tests --bin bench-store
    ;;
  lookup)
    if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y --no-install-recommends wrk nginx >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends wrk nginx >/dev/null; }
    fi
    trap './infra/emulator.sh stop "${MOTO_PID:-}" "${MOTO_DIR:-}"' EXIT
    out=$(./infra/emulator.sh start)
    eval "$out"
    cargo build --release --locked -p dispatcher-cli -p lookup
    # The cold start is the shipped artifact's: the bootstrap `cargo lambda build` makes.
    ./infra/lambda-build.sh
    DISPATCHER_LOOKUP_BIN="${CARGO_TARGET_DIR:-target}/lambda/lookup/bootstrap" \
      cargo run --release --locked -p dispatcher-tests --bin bench-lookup
    ;;
  *) echo "usage: $0 engine|controls|pr|ui|store|lookup" >&2; exit 2 ;;
esac
