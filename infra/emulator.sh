#!/usr/bin/env bash
# Installs (once, into a cached venv) and starts a moto server for DynamoDB and S3 on
# 127.0.0.1, and prints the environment that points the AWS SDK at it.
#   out=$(./infra/emulator.sh start) && eval "$out"   # exports AWS_ENDPOINT_URL ..., MOTO_PID, MOTO_DIR
#   ./infra/emulator.sh stop "$MOTO_PID" "$MOTO_DIR"
# (Capture first: `eval "$(... start)"` would hide a failed start, eval's status being 0.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

# moto 5.2.x answers GetBucketVersioning with an XML root the Rust SDK rejects: stay on 5.1.22.
# Flask and flask-cors (moto_server's web layer) pinned to the versions that work with it.
MOTO_VERSION=5.1.22
FLASK_VERSION=3.1.3
FLASK_CORS_VERSION=6.0.5
CACHE="${DISPATCHER_CACHE:-$HOME/.cache/prow-dispatcher}"
VENV="$CACHE/venv-moto-$MOTO_VERSION"
# mktemp's template, so that stop removes only directories start made.
DIR_PREFIX=prow-dispatcher-moto.

install() {
  if [ ! -x "$VENV/bin/moto_server" ]; then
    echo "installing moto $MOTO_VERSION into $VENV" >&2
    make_venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
      "moto[dynamodb,s3]==$MOTO_VERSION" "flask==$FLASK_VERSION" "flask-cors==$FLASK_CORS_VERSION" >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stop PID DIR: kills moto and removes its directory (its working directory and log).
stop() {
  local pid=${1:-} dir=${2:-}
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    # Let it exit before its directory goes: our child is waited for, another process
    # (the usual case: start's shell has exited) polled for up to 5 s.
    wait "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  case "$dir" in
    */"$DIR_PREFIX"*) rm -rf "$dir" || echo "warning: could not remove $dir" >&2 ;;
  esac
}

case "${1:-}" in
  start)
    install
    port=$(free_port)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/${DIR_PREFIX}XXXXXX")
    pid=
    # A failed start stops what it started and removes the directory.
    fail() {
      echo "$1" >&2
      stop "$pid" "$dir"
      exit 1
    }
    (cd "$dir" && exec "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1) &
    pid=$!
    ready=
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then ready=1; break; fi
      if ! kill -0 "$pid" 2>/dev/null; then fail "moto died: $(cat "$dir/moto.log")"; fi
      sleep 0.1
    done
    [ -n "$ready" ] || fail "moto did not become ready within 10 s: $(cat "$dir/moto.log")"
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
    echo "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true"
    printf 'export MOTO_PID=%q MOTO_DIR=%q DISPATCHER_MOTO_BIN=%q\n' "$pid" "$dir" "$VENV/bin/moto_server"
    ;;
  stop)
    stop "${2:-}" "${3:-}"
    ;;
  install)
    install
    ;;
  *)
    echo "usage: $0 start|stop PID [DIR]|install" >&2
    exit 2
    ;;
esac
