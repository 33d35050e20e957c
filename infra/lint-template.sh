#!/usr/bin/env bash
# Lints template.yaml with cfn-lint (errors, warnings and informational findings) and
# checkov (skips are declared, with reasons, in each resource's Metadata). The schedule
# expressions, which neither checks, are tested by tests/tests/template.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(./infra/tools.sh):$PATH"
echo "cfn-lint $(cfn-lint --version | awk '{print $2}')"
cfn-lint template.yaml --include-checks I
echo "checkov $(checkov --version)"
# --skip-download: no call to the Prisma Cloud API (there is no network in CI).
checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download
