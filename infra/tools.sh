#!/usr/bin/env bash
# Installs (once, into cached venvs) the deploy-time tools and prints the venv's bin
# directory, to put on PATH:
#   PATH="$(./infra/tools.sh):$PATH"       cfn-lint, checkov, cargo-lambda (+ zig linker)
#   PATH="$(./infra/tools.sh sam):$PATH"   the SAM CLI, for `sam build` / `sam deploy`
# (two venvs: checkov and the SAM CLI pin conflicting boto3 versions).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

CACHE="${DISPATCHER_CACHE:-$HOME/.cache/prow-dispatcher}"
# Pinned so a new linter release cannot break a clean checkout's CI.
case "${1:-ci}" in
  ci) PINS=(cfn-lint==1.58.0 checkov==3.3.30 cargo-lambda==1.9.2); PROBE=checkov ;;
  sam) PINS=(aws-sam-cli==1.170.0 cargo-lambda==1.9.2); PROBE=sam ;;
  *) echo "usage: $0 [ci|sam]" >&2; exit 2 ;;
esac
VENV="$CACHE/venv-tools-$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"

if [ ! -x "$VENV/bin/$PROBE" ] || [ ! -x "$VENV/bin/cargo-lambda" ]; then
  echo "installing ${PINS[*]} into $VENV" >&2
  rm -rf "$VENV"
  make_venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" >&2
fi
echo "$VENV/bin"
