#!/usr/bin/env bash
# Runs every test of the workspace, installing and starting what the tests need.
# Usage: ./infra/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# The corpus beside the repository drives the corpus tests; without it they say so and skip.
if [ -z "${DISPATCHER_CORPUS:-}" ] && [ -d ../shared/corpus ]; then
  export DISPATCHER_CORPUS="$(cd ../shared/corpus && pwd)"
fi

cargo test --workspace --locked "$@"
