#!/usr/bin/env bash
# Runs a benchmark program in release mode: engine | store.
# The store benchmark gets its own emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  engine) cargo run --release --locked -p dispatcher-tests --bin bench-engine ;;
  store)
    eval "$(./infra/emulator.sh start)"
    trap './infra/emulator.sh stop "$MOTO_PID"' EXIT
    cargo run --release --locked -p dispatcher-tests --bin bench-store
    ;;
  *) echo "usage: $0 engine|store" >&2; exit 2 ;;
esac
