#!/usr/bin/env bash
# Installs Prometheus from Debian (once), backfills prowjob_state_transitions for a few
# jobs over the last eight days, starts it on 127.0.0.1 and prints the environment the
# tests read:
#   out=$(./infra/prometheus.sh start) && eval "$out"   # DISPATCHER_TEST_PROMETHEUS_URL, ..._TIME, PROMETHEUS_PID, PROMETHEUS_DIR
#   ./infra/prometheus.sh stop "$PROMETHEUS_PID" "$PROMETHEUS_DIR"
# (Capture first: `eval "$(... start)"` would hide a failed start, eval's status being 0.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

# mktemp's template, so that stop removes only directories start made.
DIR_PREFIX=prow-dispatcher-prometheus.

install() {
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "installing prometheus from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus >&2 \
      || { apt-get update >&2 && apt-get install -y --no-install-recommends prometheus >&2; }
  fi
}

# Starts the server and prints the exports that point the tests at it.
start() {
  install
  dir=$(mktemp -d "${TMPDIR:-/tmp}/${DIR_PREFIX}XXXXXX")
  fail() { fail_start "$1" "" "$dir" "$DIR_PREFIX"; }
  # The evaluation time: a whole hour, more than two hours back (the head block is not
  # backfilled).
  now=$(date +%s)
  end=$(( (now / 3600 - 3) * 3600 ))
  python3 - "$end" >"$dir/series.om" <<'PY' || fail "cannot write the backfill series"
import sys
end = int(sys.argv[1])
start = end - 8 * 86400
step = 300
# job -> runs per hour; the tests check increase(...[7d]) = rate * 168.
jobs = {"pull-ci-acme-widget-main-unit": 12, "pull-ci-acme-widget-main-e2e-aws": 3, "periodic-acme-nightly": 1}
print("# TYPE prowjob_state_transitions gauge")
for t in range(start, end + 1, step):
    for job, per_hour in sorted(jobs.items()):
        value = (t - start) * per_hour / 3600
        print(f'prowjob_state_transitions{{job_name="{job}",state="pending"}} {value:.6f} {t}')
print("# EOF")
PY
  promtool tsdb create-blocks-from openmetrics --max-block-duration=24h "$dir/series.om" "$dir/data" >"$dir/backfill.log" 2>&1 \
    || fail "backfill failed: $(cat "$dir/backfill.log")"
  printf 'global: {}\nscrape_configs: []\n' >"$dir/prometheus.yml"
  port=$(free_port)
  start_server "$dir" "$DIR_PREFIX" "http://127.0.0.1:$port/-/ready" \
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=30d
  pid=$SERVER_PID
  printf 'export DISPATCHER_TEST_PROMETHEUS_URL=%q DISPATCHER_TEST_PROMETHEUS_TIME=%q PROMETHEUS_PID=%q PROMETHEUS_DIR=%q\n' \
    "http://127.0.0.1:$port" "$end" "$pid" "$dir"
}

server_command "$@"
