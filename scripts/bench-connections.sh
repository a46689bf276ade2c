#!/usr/bin/env bash
# What a connection costs the server (part of `make bench`; runs alone too):
#   W5: many authenticated idle WebSockets, spread over several 127.0.0.x
#       source addresses: server RSS before/after, per connection, and the
#       server's idle CPU over a fixed window;
#   slow readers: members of a group that stop reading while messages flow:
#       the server's RSS growth per slow reader and how each was closed.
# Each against a fresh `seqline dev` (release build, private loopback port,
# private data directory), stopped by PID afterwards.
#
# W5_CONNECTIONS (10000), W5_SOURCES (8), W5_WINDOW (20s), SLOW_READERS (10),
# SLOW_MESSAGES (3000), SLOW_BODY (8000) size the runs; SEQLINE_BIN runs
# another build of the server (to compare two builds in the same conditions);
# SKIP_BUILD=1 skips the cargo build; CONNECTION_BENCH=idle or =slow runs one
# of the two.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=$(( ${BENCH_PORT:-17611} + 60 ))
SECRET=bench-secret-0123456789abcdef
W5_CONNECTIONS=${W5_CONNECTIONS:-10000}
W5_SOURCES=${W5_SOURCES:-8}
W5_WINDOW=${W5_WINDOW:-20s}
SLOW_READERS=${SLOW_READERS:-10}
SLOW_MESSAGES=${SLOW_MESSAGES:-3000}
SLOW_BODY=${SLOW_BODY:-8000}
OUT=${BENCH_OUT:-target/bench}
SEQLINE=${SEQLINE_BIN:-./target/release/seqline}
LOADGEN=./target/release/seqline-loadgen
mkdir -p "$OUT"

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p seqline -p seqline-loadgen --bins

# Both processes hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((W5_CONNECTIONS + 512)) ]; then
  echo "(W5: the descriptor limit is $(ulimit -n); opening $(( $(ulimit -n) - 512 )) connections instead of $W5_CONNECTIONS)"
  W5_CONNECTIONS=$(( $(ulimit -n) - 512 ))
fi

# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh

start_server() {
  DATA=$(mktemp -d /tmp/seqline-bench-XXXXXX)
  env SEQLINE__GATEWAY__MAX_CONNECTIONS=$((W5_CONNECTIONS + 1000)) RUST_LOG=warn ${SERVER_ENV:-} \
    "$SEQLINE" dev --listen "127.0.0.1:$PORT" --data "$DATA" --secret "$SECRET" \
    >"$OUT/server.out" 2>"$OUT/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$OUT/server.out" 2>/dev/null && sleep 1 && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$OUT/server.err"; exit 1
}

run() {
  local name=$1; shift
  start_server
  "$LOADGEN" "$@" --url "ws://127.0.0.1:$PORT/v1/ws" --secret "$SECRET" --server-pid "$SERVER_PID" \
    --quiet | tee "$OUT/$name.txt"
  stop_server
  echo
}

SECTIONS=${CONNECTION_BENCH:-idle slow}
if [[ " $SECTIONS " == *" idle "* ]]; then
  echo "## W5 idle connections: $W5_CONNECTIONS authenticated WebSockets from $W5_SOURCES source addresses"
  run w5-idle idle --connections "$W5_CONNECTIONS" --sources "$W5_SOURCES" --cpu-window "$W5_WINDOW"
fi
if [[ " $SECTIONS " == *" slow "* ]]; then
  # The same traffic twice, each on a fresh server: to devices that read
  # (the cost of storing and pushing it), then to devices that stop reading.
  echo "## Slow readers: $SLOW_READERS devices stop reading while $SLOW_MESSAGES messages of $SLOW_BODY bytes flow to them"
  SLOW_ARGS=(slow --slow "$SLOW_READERS" --messages "$SLOW_MESSAGES" --body "$SLOW_BODY" --json)
  run slow-control "${SLOW_ARGS[@]}" --keep-reading >/dev/null
  run slow-readers "${SLOW_ARGS[@]}" >/dev/null
  python3 - "$OUT/slow-control.txt" "$OUT/slow-readers.txt" <<'PY'
import json, sys
c, s = (json.load(open(p)) for p in sys.argv[1:3])
n = max(s["slow"], 1)
print("| devices | messages × body | RSS growth, reading (MiB) | RSS growth, stalled (MiB) | per slow reader (KiB) | cut off | closed 1008 | ended without close | other code | still open |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {s['slow']} | {s['messages']} × {s['body']} B | {c['growth_kib'] / 1024:.1f} | {s['growth_kib'] / 1024:.1f} "
      f"| {(s['growth_kib'] - c['growth_kib']) / n:.0f} | {s['kicked']} | {s['closed_1008']} | {s['closed_without_frame']} "
      f"| {s['other_code']} | {s['still_open']} |")
PY
  echo
fi
