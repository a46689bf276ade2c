#!/usr/bin/env bash
# `make bench`: the benchmark tables (workloads W1-W6) on this machine.
# W6 runs in process; W1 (closed and open loop), W2, W3 and W5 (idle
# connections, slow readers: scripts/bench-connections.sh) run the load
# generator as its own process against a fresh `seqline dev` (release build,
# private loopback port, private data directory), stopped by PID afterwards;
# then W1 and W2 against the cluster (Kafka + Cassandra + Redis, roles as
# processes).
set -euo pipefail
cd "$(dirname "$0")/.."
# BENCH_EMBEDDED=0 runs only the cluster rows; BENCH_CLUSTER=0 leaves them out.

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

if [ "${BENCH_EMBEDDED:-1}" = 1 ]; then
  echo "## W6 sequencer (in process, one core, no I/O)"
  ./target/release/examples/w6 "$W6_COMMANDS" 10000
  echo
fi

# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh

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

# The embedded engine's fsyncs over the whole run (setup included) per
# committed message, from the server's own counters.
fsyncs_per_message() {
  local metrics fsyncs committed
  metrics=$(curl -sf "http://127.0.0.1:$PORT/metrics" || true)
  fsyncs=$(awk '/^seqline_engine_fsyncs_total/ {print $2}' <<<"$metrics")
  committed=$(awk '/^seqline_messages_committed_total/ {print $2}' <<<"$metrics")
  if [ -n "$fsyncs" ] && [ -n "$committed" ] && [ "$committed" != 0 ]; then
    awk -v f="$fsyncs" -v c="$committed" \
      'BEGIN { printf "  engine: %d fsyncs for %d committed messages = %.2f per message (setup included)\n", f, c, f / c }' \
      | tee -a "$OUT/$1.txt"
  fi
}

loadgen() {
  local name=$1; shift
  echo "## $name"
  start_server
  ./target/release/seqline-loadgen "$@" --url "ws://127.0.0.1:$PORT/v1/ws" --secret "$SECRET" \
    --server-pid "$SERVER_PID" --quiet --history "$OUT/$name.history.jsonl" | tee "$OUT/$name.txt"
  fsyncs_per_message "$name"
  stop_server
  echo
}

if [ "${BENCH_EMBEDDED:-1}" = 1 ]; then
loadgen w1-closed w1 --users "$W1_USERS" --messages "$W1_MESSAGES" --window 8
loadgen w1-open w1 --users "$W1_USERS" --messages "$W1_MESSAGES" --rate 5000
# W2 saturated: 50 timeline entries per message, so the timeline writers
# are the bottleneck; the gateway's admission control (max_delivery_lag)
# refuses sends for now, shown as "rate_limited (resent)" in the report.
loadgen w2-groups w2 --groups 20 --members 50 --senders 10 --messages "$W1_MESSAGES" --window 4
loadgen w3-catchup w3 --entries "$W3_ENTRIES"
# W5 idle connections and slow readers: what a connection costs.
SKIP_BUILD=1 bash scripts/bench-connections.sh
fi

# Cluster mode: the same W1 and W2 rows against the roles as separate
# processes (two gateways, a persister, a fanout) on Apache Kafka, Apache
# Cassandra and redis-server, all on this machine (scripts/cluster.sh, data
# under $OUT/cluster, private ports). The load goes to one gateway; the
# server CPU and RSS columns are that gateway's only (the persister, fanout
# and the JVMs are apart). BENCH_CLUSTER=0 leaves these rows out;
# CLUSTER_MESSAGES (default 5000) and CLUSTER_RATE (open loop, default 100/s)
# size them.
if [ "${BENCH_CLUSTER:-1}" = 1 ]; then
  CPORT=$((PORT + 20))
  export CLUSTER_DIR="$OUT/cluster" LISTEN="127.0.0.1:$CPORT" SECRET
  export SEQLINE_KAFKA_PORT=$((PORT + 40)) SEQLINE_KAFKA_CONTROLLER_PORT=$((PORT + 41))
  export SEQLINE_CASSANDRA_PORT=$((PORT + 42)) SEQLINE_CASSANDRA_STORAGE_PORT=$((PORT + 43))
  export SEQLINE_REDIS_PORT=$((PORT + 44))
  rm -rf "$CLUSTER_DIR"
  trap 'stop_server; bash scripts/cluster.sh down >/dev/null 2>&1 || true' EXIT
  bash scripts/cluster.sh up >"$OUT/cluster-up.txt" 2>&1 || { cat "$OUT/cluster-up.txt"; exit 1; }
  GW_PID=$(cat "$CLUSTER_DIR/gateway-a.pid")
  cluster_loadgen() {
    local name=$1; shift
    echo "## $name (cluster: Kafka + Cassandra + Redis, roles as processes)"
    ./target/release/seqline-loadgen "$@" --url "ws://127.0.0.1:$CPORT/v1/ws" --secret "$SECRET" \
      --server-pid "$GW_PID" --quiet --history "$OUT/$name.history.jsonl" | tee "$OUT/$name.txt"
    echo
  }
  # Smaller runs than the embedded rows: every message costs the single
  # Cassandra node several lightweight transactions (one per conversation
  # and one per member timeline), and W2's 50-member groups multiply that.
  C_MESSAGES=${CLUSTER_MESSAGES:-5000}
  C_RATE=${CLUSTER_RATE:-100}
  cluster_loadgen w1-closed-cluster w1 --users "$W1_USERS" --messages "$C_MESSAGES" --window 8
  cluster_loadgen w1-open-cluster w1 --users "$W1_USERS" --messages "$((C_RATE * 30))" --rate "$C_RATE"
  cluster_loadgen w2-groups-cluster w2 --groups 20 --members 50 --senders 10 --messages "$((C_MESSAGES / 5))" --window 4
  bash scripts/cluster.sh down >/dev/null
  trap 'stop_server' EXIT
  unset CLUSTER_DIR LISTEN SEQLINE_KAFKA_PORT SEQLINE_KAFKA_CONTROLLER_PORT SEQLINE_CASSANDRA_PORT \
    SEQLINE_CASSANDRA_STORAGE_PORT SEQLINE_REDIS_PORT
fi
if [ "${BENCH_EMBEDDED:-1}" = 1 ]; then
# W4: one huge group in read-diffusion mode (docs/huge-groups.md). Every
# run gets a fresh server with room for a million members and 20,000
# connections. The main row, then a scaling table; the whole section is
# bounded (~10 minutes on a 2-core box) by short send phases. Rows this box
# cannot do in that budget are skipped and say so unless W4_BIG=1.
W4_SECONDS=${W4_SECONDS:-30}
W4_SCALE_SECONDS=${W4_SCALE_SECONDS:-15}
W4_BIG=${W4_BIG:-0}
W4_ENV=("SEQLINE__PERSISTER__MAX_GROUP_MEMBERS=2000000" "SEQLINE__GATEWAY__MAX_CONNECTIONS=20000")
w4() {
  local name=$1 members=$2 online=$3 seconds=$4
  SERVER_ENV=("${W4_ENV[@]}")
  loadgen "$name" w4 --members "$members" --online "$online" --rate 50 --seconds "$seconds" \
    --priority-every 10 --settle 60s --json >/dev/null || echo "($name: the run did not pass; see $OUT/$name.txt)"
  SERVER_ENV=()
}
w4_row() {
  # members online deliveries/s delivery p50/p99/max, priority p50/p99, server CPU and RSS, checker verdict
  python3 - "$OUT/$1.txt" <<'PY' 2>/dev/null || echo "| $1 | (no report) |"
import json, sys
r = json.load(open(sys.argv[1]))
h, s = r["w4"], r.get("server") or {}
d, p = h["delivery_latency"], h["priority_latency"]
c = r["check"]["counts"]
print(f"| {h['members']:>9,} | {h['online']:>6,} | {h['sent']:>5} | {h['deliveries']:>9,} | {h['deliveries_per_sec']:>8,.0f} "
      f"| {d['p50_ms']:>7.1f} | {d['p99_ms']:>7.1f} | {d['max_ms']:>7.1f} | {p['p50_ms']:>6.1f} | {p['p99_ms']:>6.1f} "
      f"| {h['send_cpu_percent']:>4.0f}% | {h['cpu_us_per_message']:>7.0f} | {h['send_rss_kib'] / 1024:>6.0f} | {h['setup_secs']:>6.1f} "
      f"| {'clean' if sum(c.values()) == 0 else 'ANOMALIES'} |")
PY
}
w4_header() {
  echo "| members | online | sent | deliveries | per s | p50 ms | p99 ms | max ms | prio p50 | prio p99 | CPU (send) | µs CPU/msg | RSS MiB | setup s | checker |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
}
# `loadgen` prints the report; with --json it is JSON, kept for the table.
echo "## W4 huge group: 100,000 members, 1,000 online, 50 msg/s, ${W4_SECONDS}s, priority every 10s"
w4 w4-huge 100000 1000 "$W4_SECONDS"
w4_header; w4_row w4-huge
echo
echo "## W4 scaling (${W4_SCALE_SECONDS}s send phase each; 100k/1,000 is the row above)"
w4 w4-10k 10000 1000 "$W4_SCALE_SECONDS"
w4 w4-100k-100 100000 100 "$W4_SCALE_SECONDS"
if [ "$W4_BIG" = 1 ]; then
  w4 w4-1m 1000000 1000 "$W4_SCALE_SECONDS"
  w4 w4-100k-10k 100000 10000 "$W4_SCALE_SECONDS"
fi
w4_header
w4_row w4-10k; w4_row w4-huge; w4_row w4-100k-100
if [ "$W4_BIG" = 1 ]; then
  w4_row w4-1m; w4_row w4-100k-10k
else
  echo "| 1,000,000 | 1,000 | skipped: adding a million members (4,000 HTTP calls of 250) takes about 3 minutes; W4_BIG=1 runs it |"
  echo "| 100,000 | 10,000 | skipped: 10,000 SDK clients of the load generator share the 2 cores with the server; W4_BIG=1 runs it |"
fi
echo
fi
echo "tables and histories are in $OUT/"
