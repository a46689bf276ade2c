#!/usr/bin/env bash
# `make bench`: the benchmark tables of WORKLOADS.md on this machine.
# W6 runs in process; W1 (closed and open loop), W2 and W3 run the load
# generator as its own process against a fresh `seqline dev` (release build,
# private loopback port, private data directory), stopped by PID afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${BENCH_PORT:-17611}
SECRET=bench-secret-0123456789abcdef
W1_USERS=${W1_USERS:-200}
W1_MESSAGES=${W1_MESSAGES:-20000}
W3_ENTRIES=${W3_ENTRIES:-100000}
W6_COMMANDS=${W6_COMMANDS:-10000000}
OUT=${BENCH_OUT:-target/bench}
mkdir -p "$OUT"

cargo build --release -q -p seqline -p seqline-loadgen --bins
cargo build --release -q -p seqline-persister --example w6

echo "## W6 sequencer (in process, one core, no I/O)"
./target/release/examples/w6 "$W6_COMMANDS" 10000
echo

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
trap stop_server EXIT

start_server() {
  DATA=$(mktemp -d /tmp/seqline-bench-XXXXXX)
  RUST_LOG=warn ./target/release/seqline dev --listen "127.0.0.1:$PORT" --data "$DATA" --secret "$SECRET" \
    >"$OUT/server.out" 2>"$OUT/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    grep -q "listening on" "$OUT/server.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not start"; cat "$OUT/server.err"; exit 1
}

loadgen() {
  local name=$1; shift
  echo "## $name"
  start_server
  ./target/release/seqline-loadgen "$@" --url "ws://127.0.0.1:$PORT/v1/ws" --secret "$SECRET" \
    --server-pid "$SERVER_PID" --quiet --history "$OUT/$name.history.jsonl" | tee "$OUT/$name.txt"
  stop_server
  echo
}

loadgen w1-closed w1 --users "$W1_USERS" --messages "$W1_MESSAGES" --window 8
loadgen w1-open w1 --users "$W1_USERS" --messages "$W1_MESSAGES" --rate 5000
loadgen w2-groups w2 --groups 20 --members 50 --senders 10 --messages "$W1_MESSAGES" --window 4
loadgen w3-catchup w3 --entries "$W3_ENTRIES"
echo "tables and histories are in $OUT/"
