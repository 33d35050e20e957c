#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver from Debian (`chromium`, `chromium-driver`),
# once, for the pages' browser test (functions/dispatcher-cli/tests/browser.rs), and prints
# nothing: the test finds `chromedriver` on PATH.
set -euo pipefail
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "installing chromium and chromium-driver from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium chromium-driver >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends chromium chromium-driver >&2; }
fi
