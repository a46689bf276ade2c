# Sourced by the bench scripts: the one `seqline dev` a benchmark runs at a
# time, stopped by its PID (and its data removed) on exit or before the next.
SERVER_PID=""
DATA=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  [ -n "$DATA" ] && rm -rf "$DATA"
  DATA=""
}
trap 'stop_server' EXIT
