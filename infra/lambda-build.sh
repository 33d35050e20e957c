#!/usr/bin/env bash
# Builds the four functions as Lambda bootstraps (`cargo lambda build --release`, x86_64
# unless ARCH=arm64) and prints each bootstrap's size. `sam build --beta-features` runs the
# same build; this is what CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(./infra/tools.sh):$PATH"
arch_flag=()
if [ "${ARCH:-x86_64}" = arm64 ]; then arch_flag=(--arm64); fi
cargo lambda build --release --locked "${arch_flag[@]}" -p lookup -p webhook -p recompute -p control
target="${CARGO_TARGET_DIR:-target}"
for f in lookup webhook recompute control; do
  bootstrap="$target/lambda/$f/bootstrap"
  [ -x "$bootstrap" ] || { echo "missing $bootstrap" >&2; exit 1; }
  awk -v f="$f" -v p="$bootstrap" -v b="$(stat -c %s "$bootstrap")" \
    'BEGIN { printf "%-10s %6.1f MB  %s\n", f, b / 1048576, p }'
done
