#!/usr/bin/env bash
# Installs (once, into a cached venv) and starts a moto server for DynamoDB and S3 on
# 127.0.0.1, and prints the environment that points the AWS SDK at it.
#   eval "$(./infra/emulator.sh start)"   # exports AWS_ENDPOINT_URL ..., MOTO_PID
#   ./infra/emulator.sh stop "$MOTO_PID"
set -euo pipefail

# moto 5.2.x answers GetBucketVersioning with an XML root the Rust SDK rejects: stay on 5.1.22.
MOTO_VERSION=5.1.22
CACHE="${DISPATCHER_CACHE:-$HOME/.cache/prow-dispatcher}"
VENV="$CACHE/venv-moto-$MOTO_VERSION"

install() {
  if [ ! -x "$VENV/bin/moto_server" ]; then
    echo "installing moto $MOTO_VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
      "moto[dynamodb,s3]==$MOTO_VERSION" flask flask-cors >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    install
    port=$(free_port)
    dir=$(mktemp -d)
    (cd "$dir" && exec "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1) &
    pid=$!
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then break; fi
      if ! kill -0 "$pid" 2>/dev/null; then echo "moto died: $(cat "$dir/moto.log")" >&2; exit 1; fi
      sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null || { echo "moto did not become ready" >&2; exit 1; }
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
    echo "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true"
    echo "export MOTO_PID=$pid DISPATCHER_MOTO_BIN=$VENV/bin/moto_server"
    ;;
  stop)
    [ -n "${2:-}" ] && kill "$2" 2>/dev/null || true
    ;;
  install)
    install
    ;;
  *)
    echo "usage: $0 start|stop PID|install" >&2
    exit 2
    ;;
esac
