#!/usr/bin/env bash
# Runs every test of the workspace, installing and starting what the tests need: a moto
# server (DynamoDB + S3) in a cached venv, a Prometheus from Debian with backfilled data,
# and headless Chromium with chromedriver from Debian (the pages' browser test). Extra
# arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The corpus beside the repository drives the corpus tests; without it they say so and skip.
if [ -z "${DISPATCHER_CORPUS:-}" ] && [ -d ../shared/corpus ]; then
  export DISPATCHER_CORPUS="$(cd ../shared/corpus && pwd)"
fi

# Whatever got started is stopped on exit (the variables are unset until it has).
trap './infra/emulator.sh stop "${MOTO_PID:-}" "${MOTO_DIR:-}"; ./infra/prometheus.sh stop "${PROMETHEUS_PID:-}" "${PROMETHEUS_DIR:-}"' EXIT
# The output is captured before it is evaluated: `eval "$(... start)"` would carry on
# after a failed start (eval's own status is 0).
out=$(./infra/emulator.sh start)
eval "$out"
out=$(./infra/prometheus.sh start)
eval "$out"
./infra/browser.sh
# Tests that need the emulator, Prometheus or the browser fail, rather than skip, when it
# is missing.
export DISPATCHER_REQUIRE_EMULATOR=1 DISPATCHER_REQUIRE_PROMETHEUS=1 DISPATCHER_REQUIRE_BROWSER=1

cargo test --workspace --locked "$@"
