#!/usr/bin/env bash
# Installs Prometheus from Debian (once), backfills prowjob_state_transitions for a few
# jobs over the last eight days, starts it on 127.0.0.1 and prints the environment the
# tests read:
#   eval "$(./infra/prometheus.sh start)"   # DISPATCHER_TEST_PROMETHEUS_URL, ..._TIME, PROMETHEUS_PID
#   ./infra/prometheus.sh stop "$PROMETHEUS_PID"
set -euo pipefail

install() {
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "installing prometheus from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus >&2 \
      || { apt-get update >&2 && apt-get install -y --no-install-recommends prometheus >&2; }
  fi
}

case "${1:-}" in
  start)
    install
    dir=$(mktemp -d)
    # The evaluation time: a whole hour, more than two hours back (the head block is not
    # backfilled).
    now=$(date +%s)
    end=$(( (now / 3600 - 3) * 3600 ))
    python3 - "$end" >"$dir/series.om" <<'PY'
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
      || { cat "$dir/backfill.log" >&2; exit 1; }
    printf 'global: {}\nscrape_configs: []\n' >"$dir/prometheus.yml"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
      --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=30d >"$dir/prometheus.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then break; fi
      if ! kill -0 "$pid" 2>/dev/null; then cat "$dir/prometheus.log" >&2; exit 1; fi
      sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null || { echo "prometheus did not become ready" >&2; exit 1; }
    echo "export DISPATCHER_TEST_PROMETHEUS_URL=http://127.0.0.1:$port DISPATCHER_TEST_PROMETHEUS_TIME=$end PROMETHEUS_PID=$pid"
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
