#!/usr/bin/env bash
# `make test`: starts the engines the tests share (Apache Kafka, Apache
# Cassandra) on private loopback ports with fresh data, runs every test, and
# stops what it started, by PID, whatever happened. Tests that kill an engine
# start a private one of their own; redis-server is started per test.
#
#   SEQLINE_TEST_PORTS_BASE  first of the ports used (default 29090):
#                            Kafka +2, its controller +3, Cassandra +52,
#                            Cassandra's storage port +53
#   NEXTEST_PROFILE          nextest profile (default ci)
#   NEXTEST_ARGS             extra nextest arguments (e.g. a filter)
set -euo pipefail
cd "$(dirname "$0")/.."

# `make test-tools` builds helm with Go into $(go env GOPATH)/bin.
if command -v go >/dev/null 2>&1; then
    PATH="$PATH:$(go env GOPATH)/bin"
    export PATH
fi

BASE="${SEQLINE_TEST_PORTS_BASE:-29090}"
RUN_DIR="${SEQLINE_TEST_ENGINES_DIR:-$PWD/target/test-engines}"
export SEQLINE_KAFKA_PORT=$((BASE + 2)) SEQLINE_KAFKA_CONTROLLER_PORT=$((BASE + 3))
export SEQLINE_CASSANDRA_PORT=$((BASE + 52)) SEQLINE_CASSANDRA_STORAGE_PORT=$((BASE + 53))
export SEQLINE_KAFKA_DIR="$RUN_DIR/kafka" SEQLINE_CASSANDRA_DIR="$RUN_DIR/cassandra"

stop_engines() {
    local rc=$?
    echo "== stopping the test engines"
    scripts/kafka.sh stop || true
    scripts/cassandra.sh stop || true
    exit "$rc"
}

# A previous run that was killed may have left its engines behind: stop
# those (the scripts only stop what their PID files name), then start fresh.
scripts/kafka.sh stop >/dev/null 2>&1 || true
scripts/cassandra.sh stop >/dev/null 2>&1 || true
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
trap stop_engines EXIT INT TERM

echo "== building the tests while the engines start"
started=$SECONDS
scripts/cassandra.sh start >"$RUN_DIR/cassandra-start.log" 2>&1 &
cassandra_pid=$!
scripts/kafka.sh start >"$RUN_DIR/kafka-start.log" 2>&1 &
kafka_pid=$!
cargo nextest run --workspace --no-run --cargo-quiet
ok=1
wait "$kafka_pid" || ok=0
cat "$RUN_DIR/kafka-start.log"
wait "$cassandra_pid" || ok=0
cat "$RUN_DIR/cassandra-start.log"
if [[ $ok != 1 ]]; then
    echo "the test engines did not start (logs above; data and logs under $RUN_DIR)" >&2
    exit 1
fi
echo "== engines and build ready after $((SECONDS - started)) s"
export SEQLINE_TEST_KAFKA="127.0.0.1:$SEQLINE_KAFKA_PORT"
export SEQLINE_TEST_CASSANDRA="127.0.0.1:$SEQLINE_CASSANDRA_PORT"

# shellcheck disable=SC2086
cargo nextest run --workspace --no-fail-fast --profile "${NEXTEST_PROFILE:-ci}" ${NEXTEST_ARGS:-}
cargo test --workspace --doc --quiet
