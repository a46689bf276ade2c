#!/usr/bin/env bash
# A private redis-server for development and tests, on 127.0.0.1:16379
# (override with SEQLINE_REDIS_PORT). No persistence.
#
#   scripts/redis.sh start   # then: SEQLINE_TEST_REDIS=redis://127.0.0.1:16379
#   scripts/redis.sh stop    # kills only the server this script started
#
# The PID file lives in ${SEQLINE_REDIS_DIR:-/tmp/seqline-redis-$PORT}.
set -euo pipefail

PORT="${SEQLINE_REDIS_PORT:-16379}"
DIR="${SEQLINE_REDIS_DIR:-/tmp/seqline-redis-$PORT}"
PIDFILE="$DIR/redis.pid"

running_pid() {
    # The PID in the file, if that process is still a redis-server.
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]] || return 1
    echo "$pid"
}

start() {
    command -v redis-server >/dev/null || {
        echo "redis-server is not installed: run 'make test-tools' (Debian package redis-server)" >&2
        exit 1
    }
    if pid="$(running_pid)"; then
        echo "redis-server already running (pid $pid) on 127.0.0.1:$PORT"
        return
    fi
    mkdir -p "$DIR"
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$PIDFILE" --logfile "$DIR/redis.log" --dir "$DIR"
    local deadline=$((SECONDS + 10))
    until redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; do
        if ((SECONDS >= deadline)); then
            echo "redis-server did not answer PING within 10 s; see $DIR/redis.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "redis-server running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    echo "export SEQLINE_TEST_REDIS=redis://127.0.0.1:$PORT"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "no redis-server started by this script on port $PORT"
        rm -f "$PIDFILE"
        return
    fi
    kill "$pid"
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "redis-server (pid $pid) did not stop within 10 s" >&2
            exit 1
        fi
        sleep 0.1
    done
    rm -f "$PIDFILE"
    echo "redis-server (pid $pid) stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
