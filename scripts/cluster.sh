#!/usr/bin/env bash
# Cluster mode on one machine, without Docker: Apache Kafka, Apache Cassandra
# and redis-server, then the three roles as separate `seqline` processes
# (two gateways, one persister, one fanout), all on loopback, data and logs
# under one folder. `make cluster` / `make cluster-down` call this.
#
#   scripts/cluster.sh up      # starts what is not running, prints how to connect
#   scripts/cluster.sh down    # stops the roles, then the engines, by PID
#   scripts/cluster.sh status
#
# CLUSTER_DIR (default ./seqline-cluster) holds everything; LISTEN
# (default 127.0.0.1:7600) is the first gateway, the second listens on the
# next port; SECRET is the token secret (the default matches `make traffic`);
# SEQLINE_BIN the binary (default target/release/seqline).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="$(mkdir -p "${CLUSTER_DIR:-./seqline-cluster}" && cd "${CLUSTER_DIR:-./seqline-cluster}" && pwd)"
LISTEN="${LISTEN:-127.0.0.1:7600}"
HOST="${LISTEN%:*}"
PORT="${LISTEN##*:}"
SECRET="${SECRET:-seqline-dev-secret-change-me}"
BIN="${SEQLINE_BIN:-target/release/seqline}"

export SEQLINE_KAFKA_DIR="$DIR/kafka" SEQLINE_KAFKA_PORT="${SEQLINE_KAFKA_PORT:-19092}"
export SEQLINE_KAFKA_CONTROLLER_PORT="${SEQLINE_KAFKA_CONTROLLER_PORT:-19093}"
export SEQLINE_CASSANDRA_DIR="$DIR/cassandra" SEQLINE_CASSANDRA_PORT="${SEQLINE_CASSANDRA_PORT:-19042}"
export SEQLINE_CASSANDRA_STORAGE_PORT="${SEQLINE_CASSANDRA_STORAGE_PORT:-19043}"
export SEQLINE_REDIS_DIR="$DIR/redis" SEQLINE_REDIS_PORT="${SEQLINE_REDIS_PORT:-16379}"

ROLES=(gateway-a gateway-b persister fanout)

role_env() {
    local role=$1
    echo "SEQLINE_SECRET=$SECRET"
    echo "SEQLINE__PORTS__LOG=kafka://127.0.0.1:$SEQLINE_KAFKA_PORT?replication=1&partitions=4"
    echo "SEQLINE__PORTS__STORE=scylla://127.0.0.1:$SEQLINE_CASSANDRA_PORT/seqline?rf=1"
    echo "SEQLINE__PORTS__PRESENCE=redis://127.0.0.1:$SEQLINE_REDIS_PORT?prefix=seqline"
    case "$role" in
        gateway-a) echo "SEQLINE__GATEWAY__ID=gw-a" ;;
        gateway-b) echo "SEQLINE__GATEWAY__ID=gw-b" ;;
        persister) echo "SEQLINE__HEALTH__LISTEN=$HOST:$((PORT + 11))" ;;
        fanout) echo "SEQLINE__HEALTH__LISTEN=$HOST:$((PORT + 12))" ;;
    esac
}

role_args() {
    case "$1" in
        gateway-a) echo "gateway --listen $HOST:$PORT" ;;
        gateway-b) echo "gateway --listen $HOST:$((PORT + 1))" ;;
        persister) echo "persister" ;;
        fanout) echo "fanout" ;;
    esac
}

role_pid() {
    # The PID in the role's file, if that process is still a seqline.
    local file="$DIR/$1.pid" pid
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == seqline* ]] || return 1
    echo "$pid"
}

start_role() {
    local role=$1 pid log="$DIR/$1.log"
    if pid="$(role_pid "$role")"; then
        echo "$role already running (pid $pid)"
        return
    fi
    local -a env_args args
    mapfile -t env_args < <(role_env "$role")
    read -r -a args <<<"$(role_args "$role")"
    env "${env_args[@]}" "$BIN" "${args[@]}" >>"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$DIR/$role.pid"
    # The banner ("seqline … listening on" / "… running") comes once the
    # role has connected to Kafka, Cassandra and Redis.
    local deadline=$((SECONDS + 120))
    until grep -q "^seqline .*\(listening on\|running\)" <(tail -n 50 "$log" 2>/dev/null); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$role exited at start; the end of $log:" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "$role did not start within 120 s; see $log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "$role running (pid $pid), log $log"
}

up() {
    [[ -x "$BIN" ]] || {
        echo "$BIN not found: build it first (cargo build --release -p seqline), or use 'make cluster'" >&2
        exit 1
    }
    echo "data and logs in $DIR"
    scripts/kafka.sh start
    scripts/cassandra.sh start
    scripts/redis.sh start
    # The persister first: it creates the keyspace and the topics.
    for role in persister fanout gateway-a gateway-b; do
        start_role "$role"
    done
    cat <<EOF

seqline cluster running: Kafka 127.0.0.1:$SEQLINE_KAFKA_PORT, Cassandra 127.0.0.1:$SEQLINE_CASSANDRA_PORT, Redis 127.0.0.1:$SEQLINE_REDIS_PORT
  gateways   ws://$HOST:$PORT/v1/ws   ws://$HOST:$((PORT + 1))/v1/ws
  health     http://$HOST:$PORT/healthz   persister http://$HOST:$((PORT + 11))/readyz   fanout http://$HOST:$((PORT + 12))/readyz

  mint a token:   $BIN token --user alice --device laptop --secret '$SECRET'
  load:           make traffic
  stop:           make cluster-down
EOF
}

down() {
    local pid
    for role in "${ROLES[@]}"; do
        if pid="$(role_pid "$role")"; then
            kill -TERM "$pid"
            local deadline=$((SECONDS + 20))
            while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            echo "$role (pid $pid) stopped"
        fi
        rm -f "$DIR/$role.pid"
    done
    scripts/redis.sh stop
    scripts/cassandra.sh stop
    scripts/kafka.sh stop
}

status() {
    local pid
    for role in "${ROLES[@]}"; do
        if pid="$(role_pid "$role")"; then echo "$role running (pid $pid)"; else echo "$role stopped"; fi
    done
    scripts/kafka.sh status || true
    scripts/cassandra.sh status || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
