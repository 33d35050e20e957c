#!/usr/bin/env bash
# Runs every test of the workspace, installing and starting what the tests need: a moto
# server (DynamoDB + S3) in a cached venv. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The corpus beside the repository drives the corpus tests; without it they say so and skip.
if [ -z "${DISPATCHER_CORPUS:-}" ] && [ -d ../shared/corpus ]; then
  export DISPATCHER_CORPUS="$(cd ../shared/corpus && pwd)"
fi

eval "$(./infra/emulator.sh start)"
trap './infra/emulator.sh stop "$MOTO_PID"' EXIT
# Tests that need the emulator fail, rather than skip, when it is missing.
export DISPATCHER_REQUIRE_EMULATOR=1

cargo test --workspace --locked "$@"
