#!/usr/bin/env bash
# Apache Kafka 4 (one KRaft node, broker + controller in one JVM) for the
# Kafka adapter's tests and for trying cluster mode by hand. The jars come
# from Maven Central (scripts/engines/kafka/pom.xml) into .engines/kafka/libs.
# Everything listens on 127.0.0.1 only.
#
#   scripts/kafka.sh install   # fetch the jars once (needs mvn and java 17+)
#   scripts/kafka.sh start     # the shared broker; prints the export line
#   scripts/kafka.sh stop      # stops only the broker `start` started
#   scripts/kafka.sh status
#   scripts/kafka.sh run DATA_DIR PORT CONTROLLER_PORT
#       # one broker in the foreground (exec: the PID is the JVM's, so a test
#       # can SIGKILL or SIGSTOP it and run it again on the same DATA_DIR)
#
# `start` uses SEQLINE_KAFKA_PORT (default 19092), SEQLINE_KAFKA_CONTROLLER_PORT
# (default 19093) and keeps data, log and PID in SEQLINE_KAFKA_DIR (default
# .engines/run/kafka-$PORT). KAFKA_HEAP (default "-Xms256m -Xmx512m") sizes
# the JVM. With SEQLINE_KAFKA_WATCH_PID set, `run` kills the broker once that
# process is gone (a test's private broker does not outlive the test).
#
# A secure listener as managed services have it (for `run` and `start`),
# beside the plain one:
#   SEQLINE_KAFKA_SASL_SSL_PORT=P       SASL over TLS on 127.0.0.1:P
#   SEQLINE_KAFKA_TLS_KEYSTORE=F        its PEM file: the broker's private key
#                                       (PKCS#8, unencrypted), then certificate
#   SEQLINE_KAFKA_SASL_USERS="u:pw …"   users for PLAIN, SCRAM-SHA-256 and
#                                       SCRAM-SHA-512 (SCRAM users are written
#                                       when the data directory is formatted)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="$ROOT/scripts/engines/kafka"
LIBS="$ROOT/.engines/kafka/libs"
STAMP="$LIBS/.installed"
START_WAIT=90 # seconds `start` waits for the broker
STOP_WAIT=30  # seconds `stop` waits after SIGTERM before SIGKILL

die() {
    echo "kafka.sh: $*" >&2
    exit 1
}

need_java() {
    command -v java >/dev/null || die "java is not installed (Apache Kafka 4 needs Java 17+: Debian package openjdk-17-jre-headless)"
}

pom_hash() {
    sha256sum <"$ENGINE/pom.xml" | cut -d' ' -f1
}

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]
}

install() {
    if installed; then
        return
    fi
    need_java
    command -v mvn >/dev/null || die "mvn is not installed (Debian package maven); it fetches the Kafka jars from Maven Central"
    mkdir -p "$ROOT/.engines/kafka"
    # Several test processes may install at once: one fetches, the others
    # wait for it and then find the stamp. The lock is a subshell's, so a
    # broker started afterwards does not inherit it.
    (
        flock -w 600 9 || die "another 'kafka.sh install' held the lock for 10 minutes"
        installed && exit 0
        echo "kafka.sh: fetching the Apache Kafka jars from Maven Central into $LIBS" >&2
        tmp="$ROOT/.engines/kafka/libs.tmp"
        rm -rf "$tmp"
        if ! mvn -q -B -Dstyle.color=never -f "$ENGINE/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
            rm -rf "$tmp"
            die "mvn could not fetch the Kafka jars (see above); Maven Central must be reachable"
        fi
        ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "mvn ran but no kafka_2.13 jar is in $tmp"
        pom_hash >"$tmp/.installed"
        rm -rf "$LIBS"
        mv "$tmp" "$LIBS"
        echo "kafka.sh: installed $(ls "$LIBS" | wc -l) jars in $LIBS" >&2
    ) 9>"$ROOT/.engines/kafka/install.lock"
}

need_libs() {
    installed || die "the Kafka jars are missing or stale in $LIBS: run 'scripts/kafka.sh install'"
    need_java
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
    local dir="$1" port="$2" cport="$3" secure="${SEQLINE_KAFKA_SASL_SSL_PORT:-}"
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh run: one KRaft node for tests, on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport${secure:+,SASL_SSL://127.0.0.1:$secure}
advertised.listeners=PLAINTEXT://127.0.0.1:$port${secure:+,SASL_SSL://127.0.0.1:$secure}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${secure:+,SASL_SSL:SASL_SSL}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
num.partitions=1
# seqline creates its topics itself, with their partition counts.
auto.create.topics.enable=false
# Groups assign as soon as the first member has joined.
group.initial.rebalance.delay.ms=0
# After a SIGKILL the restarted controller keeps the dead broker's
# registration until its session expires and refuses the new incarnation
# until then (DUPLICATE_BROKER_REGISTRATION): 4 s instead of the default 9 s
# keeps a restart short, and still outlasts a stall of a loaded CI machine.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
# A small machine: fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
log.cleaner.threads=1
EOF
    [[ -z "$secure" ]] || write_secure_config "$dir" "$secure"
}

# The SASL_SSL listener's settings (see the header).
write_secure_config() {
    local dir="$1" secure="$2" keystore="${SEQLINE_KAFKA_TLS_KEYSTORE:-}" plain_users="" pair
    [[ "$secure" =~ ^[0-9]+$ ]] || die "SEQLINE_KAFKA_SASL_SSL_PORT must be a port number: $secure"
    [[ -r "$keystore" ]] || die "SEQLINE_KAFKA_SASL_SSL_PORT needs SEQLINE_KAFKA_TLS_KEYSTORE (a readable PEM file): '$keystore'"
    for pair in ${SEQLINE_KAFKA_SASL_USERS:-}; do
        [[ "$pair" == *:* ]] || die "SEQLINE_KAFKA_SASL_USERS: '$pair' is not user:password"
        plain_users+=" user_${pair%%:*}=\"${pair#*:}\""
    done
    cat >>"$dir/server.properties" <<EOF
# The secure listener: SASL (PLAIN, SCRAM) over TLS.
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$keystore
EOF
}

# `--add-scram` arguments of the format step for SEQLINE_KAFKA_SASL_USERS.
scram_args() {
    local pair mech
    for pair in ${SEQLINE_KAFKA_SASL_USERS:-}; do
        for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
            printf '%s\n' --add-scram "$mech=[name=${pair%%:*},password=${pair#*:}]"
        done
    done
}

# run DATA_DIR PORT CONTROLLER_PORT: formats DATA_DIR/data once, then
# becomes the broker (exec).
run() {
    [[ $# -eq 3 ]] || die "usage: kafka.sh run DATA_DIR PORT CONTROLLER_PORT"
    local dir port="$2" cport="$3"
    [[ "$port" =~ ^[0-9]+$ && "$cport" =~ ^[0-9]+$ ]] || die "ports must be numbers: $port $cport"
    need_libs
    mkdir -p "$1"
    dir="$(realpath "$1")"
    write_config "$dir" "$port" "$cport"
    # A test broker: small heap, serial GC, C1 only (starts faster and takes
    # less CPU from the tests on a small machine; its throughput is plenty).
    local java_opts=(
        ${KAFKA_HEAP:--Xms256m -Xmx512m}
        -XX:+UseSerialGC
        -XX:TieredStopAtLevel=1
        -XX:+ExitOnOutOfMemoryError
        -Djava.awt.headless=true
        -Dkafka.logs.dir="$dir"
        -Dlog4j2.configurationFile="$ENGINE/log4j2.xml"
    )
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        # A fresh cluster id (16 random bytes, URL-safe base64 as Kafka's Uuid).
        local id
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        # `--cluster-id=ID` in one word: an id that starts with `-` (one in
        # 64) would otherwise be read as an option.
        local scram=()
        [[ -z "${SEQLINE_KAFKA_SASL_SSL_PORT:-}" ]] || mapfile -t scram < <(scram_args)
        java "${java_opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
            --cluster-id="$id" -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 ||
            die "formatting $dir/data failed; see $dir/format.log"
    fi
    if [[ -n "${SEQLINE_KAFKA_WATCH_PID:-}" ]]; then
        # A test's private broker: when the test process dies without
        # stopping it (killed at a timeout), a watcher kills the JVM (this
        # shell's PID, once exec'd) instead of leaving it behind.
        local watched="$SEQLINE_KAFKA_WATCH_PID" me=$$
        (
            while kill -0 "$watched" 2>/dev/null && kill -0 "$me" 2>/dev/null; do sleep 1; done
            kill -0 "$watched" 2>/dev/null || kill -KILL "$me" 2>/dev/null
        ) </dev/null >/dev/null 2>&1 &
    fi
    exec java "${java_opts[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
}

# The shared broker of `start`, `stop` and `status`.
PORT="${SEQLINE_KAFKA_PORT:-19092}"
CPORT="${SEQLINE_KAFKA_CONTROLLER_PORT:-19093}"
DIR="${SEQLINE_KAFKA_DIR:-$ROOT/.engines/run/kafka-$PORT}"
PIDFILE="$DIR/kafka.pid"

running_pid() {
    # The PID in the file, if that process is still our broker's JVM.
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $(realpath -m "$DIR")/server.properties" || return 1
    echo "$pid"
}

start() {
    local pid
    if pid="$(running_pid)"; then
        echo "kafka already running (pid $pid) on 127.0.0.1:$PORT" >&2
        echo "export SEQLINE_TEST_KAFKA=127.0.0.1:$PORT"
        return
    fi
    install
    port_free "$PORT" || die "127.0.0.1:$PORT is already taken (set SEQLINE_KAFKA_PORT)"
    port_free "$CPORT" || die "127.0.0.1:$CPORT is already taken (set SEQLINE_KAFKA_CONTROLLER_PORT)"
    mkdir -p "$DIR"
    local log="$DIR/server.log" from=0
    [[ -f "$log" ]] && from="$(stat -c %s "$log")"
    # stdin from /dev/null and no terminal: the broker outlives this script.
    bash "$0" run "$DIR" "$PORT" "$CPORT" </dev/null >"$DIR/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    local started=$SECONDS
    # Ready once this run has logged "Kafka Server started": the broker has
    # registered and been unfenced by its controller, so it serves requests.
    until [[ -f "$log" ]] && tail -c "+$((from + 1))" "$log" | grep -q "Kafka Server started"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            die "kafka exited during start-up; see $DIR/stdout.log and $log"
        fi
        if ((SECONDS - started >= START_WAIT)); then
            die "kafka (pid $pid) was not ready within ${START_WAIT}s; see $log (still running: 'scripts/kafka.sh stop' ends it)"
        fi
        sleep 0.2
    done
    echo "kafka running (pid $pid) on 127.0.0.1:$PORT after $((SECONDS - started))s; data and logs in $DIR" >&2
    echo "export SEQLINE_TEST_KAFKA=127.0.0.1:$PORT"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "no kafka started by this script in $DIR" >&2
        rm -f "$PIDFILE"
        return
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_WAIT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "kafka (pid $pid) did not stop within ${STOP_WAIT}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    echo "kafka (pid $pid) stopped" >&2
}

status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running (pid $pid) on 127.0.0.1:$PORT, data in $DIR"
    else
        echo "stopped"
        return 3
    fi
}

case "${1:-}" in
    install) install ;;
    run)
        shift
        run "$@"
        ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: $0 install|start|stop|status|run DATA_DIR PORT CONTROLLER_PORT" >&2
        exit 2
        ;;
esac
