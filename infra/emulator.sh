#!/usr/bin/env bash
# Installs (once, into a cached venv) and starts a moto server for DynamoDB and S3 on
# 127.0.0.1, and prints the environment that points the AWS SDK at it.
#   out=$(./infra/emulator.sh start) && eval "$out"   # exports AWS_ENDPOINT_URL ..., MOTO_PID, MOTO_DIR
#   ./infra/emulator.sh stop "$MOTO_PID" "$MOTO_DIR"
# (Capture first: `eval "$(... start)"` would hide a failed start, eval's status being 0.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

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

# Starts the server and prints the exports that point the tests at it.
start() {
  install
  port=$(free_port)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/${DIR_PREFIX}XXXXXX")
  start_server "$dir" "$DIR_PREFIX" "http://127.0.0.1:$port/moto-api/" \
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
  pid=$SERVER_PID
  echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
  echo "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true"
  printf 'export MOTO_PID=%q MOTO_DIR=%q DISPATCHER_MOTO_BIN=%q\n' "$pid" "$dir" "$VENV/bin/moto_server"
}

server_command "$@"
