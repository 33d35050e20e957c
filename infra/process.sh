# Sourced by emulator.sh and prometheus.sh: the life of a test server started in the
# background, in a directory of its own that goes with it.

# free_port: prints a port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stop_server PID DIR PREFIX: kills the server and removes its directory, but only one
# whose name starts with PREFIX (mktemp's template), so that stop removes only what start made.
stop_server() {
  local pid=${1:-} dir=${2:-} prefix=$3
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
    */"$prefix"*) rm -rf "$dir" || echo "warning: could not remove $dir" >&2 ;;
  esac
}

# fail_start MESSAGE PID DIR PREFIX: a failed start stops what it started, removes the
# directory and exits.
fail_start() {
  echo "$1" >&2
  stop_server "$2" "$3" "$4"
  exit 1
}

# start_server DIR PREFIX URL COMMAND...: runs COMMAND in DIR in the background, its output
# in DIR/server.log, and waits up to 10 s for URL to answer. Sets SERVER_PID; a server that
# dies or does not answer goes through fail_start.
start_server() {
  local dir=$1 prefix=$2 url=$3
  shift 3
  local name log="$dir/server.log"
  name=$(basename "$1")
  (cd "$dir" && exec "$@" >"$log" 2>&1) &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if curl -sf "$url" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail_start "$name died: $(cat "$log")" "$SERVER_PID" "$dir" "$prefix"
    sleep 0.1
  done
  fail_start "$name did not become ready within 10 s: $(cat "$log")" "$SERVER_PID" "$dir" "$prefix"
}

# The command line every server script shares: start (the script's own `start`), stop PID
# [DIR], install (the script's own `install`).
server_command() {
  case "${1:-}" in
    start) start ;;
    stop) stop_server "${2:-}" "${3:-}" "$DIR_PREFIX" ;;
    install) install ;;
    *)
      echo "usage: $0 start|stop PID [DIR]|install" >&2
      exit 2
      ;;
  esac
}
