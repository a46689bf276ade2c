#!/usr/bin/env bash
# Apache Cassandra 5.0 (one node, loopback only) for development and tests:
# the CQL server the ScyllaDB adapter is tested against. The jars come from
# Maven Central (scripts/engines/cassandra/pom.xml) into .engines/cassandra.
#
#   scripts/cassandra.sh install   # fetch the jars once (needs mvn and Java 17)
#   scripts/cassandra.sh start     # the shared node; prints the export to use
#   scripts/cassandra.sh status
#   scripts/cassandra.sh stop      # stops only the node this script started
#   scripts/cassandra.sh run DATA_DIR NATIVE_PORT STORAGE_PORT
#                                  # one node in the foreground (exec java: the
#                                  # PID is the JVM's), what tests start
#
# start: native (CQL) port ${SEQLINE_CASSANDRA_PORT:-19042}, storage port
# ${SEQLINE_CASSANDRA_STORAGE_PORT:-19043}, data, log and PID file in
# ${SEQLINE_CASSANDRA_DIR:-.engines/run/cassandra-$PORT}. No JMX port is opened.
# With SEQLINE_CASSANDRA_WATCH_PID set, `run` kills the node once that process
# is gone (a test's private node does not outlive a test killed at a timeout).
# Secure links (what a managed cluster asks for), for `run` and `start`:
#   SEQLINE_CASSANDRA_AUTH=password   PasswordAuthenticator (user cassandra,
#                                     password cassandra until changed)
#   SEQLINE_CASSANDRA_TLS_KEYSTORE=F  clients must use TLS; F is a PEM file
#                                     with the node's private key (PKCS#8,
#                                     unencrypted) and certificate
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE_SRC="$ROOT/scripts/engines/cassandra"
POM="$ENGINE_SRC/pom.xml"
ENGINE_DIR="$ROOT/.engines/cassandra"
LIBS="$ENGINE_DIR/libs"
STAMP="$ENGINE_DIR/libs.stamp"
START_WAIT="${SEQLINE_CASSANDRA_START_WAIT:-180}"

PORT="${SEQLINE_CASSANDRA_PORT:-19042}"
STORAGE_PORT="${SEQLINE_CASSANDRA_STORAGE_PORT:-19043}"
DIR="${SEQLINE_CASSANDRA_DIR:-$ROOT/.engines/run/cassandra-$PORT}"
# The node's command line names its data directory absolutely.
if [[ -d "$DIR" ]]; then
    DIR="$(cd "$DIR" && pwd)"
fi
PIDFILE="$DIR/cassandra.pid"

die() {
    echo "cassandra.sh: $*" >&2
    exit 1
}

# A Java 17 `java`: $JAVA_HOME's, the one on PATH, or Debian's.
java_bin() {
    local candidate version
    for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" \
        /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-arm64/bin/java; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        version="$("$candidate" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
        if [[ "$version" == 17 ]]; then
            echo "$candidate"
            return
        fi
    done
    die "Cassandra 5.0 needs Java 17 (set JAVA_HOME, or apt-get install openjdk-17-jre-headless)"
}

pom_hash() {
    sha256sum "$POM" | cut -d' ' -f1
}

install() {
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; then
        return
    fi
    command -v mvn >/dev/null || die "Maven is not installed: apt-get install maven (it fetches Cassandra's jars)"
    java_bin >/dev/null
    mkdir -p "$ENGINE_DIR"
    # Tests in several processes may install at once: one does, the others wait.
    exec 9>"$ENGINE_DIR/install.lock"
    flock -w 900 9 || die "another install holds $ENGINE_DIR/install.lock for 15 min"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; then
        return
    fi
    echo "cassandra.sh: fetching Apache Cassandra's jars from Maven Central into $LIBS" >&2
    rm -rf "$LIBS.tmp"
    if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$LIBS.tmp" >"$ENGINE_DIR/install.log" 2>&1; then
        tail -20 "$ENGINE_DIR/install.log" >&2
        die "mvn could not fetch the jars; full output in $ENGINE_DIR/install.log"
    fi
    rm -rf "$LIBS"
    mv "$LIBS.tmp" "$LIBS"
    pom_hash >"$STAMP"
    echo "cassandra.sh: installed $(find "$LIBS" -name '*.jar' | wc -l) jars" >&2
}

# Password authentication and client TLS, as SEQLINE_CASSANDRA_AUTH and
# SEQLINE_CASSANDRA_TLS_KEYSTORE ask, written into the node's config.
secure_config() {
    local yaml="$1"
    case "${SEQLINE_CASSANDRA_AUTH:-}" in
        "") ;;
        password)
            sed -i -e 's/^authenticator: .*/authenticator: PasswordAuthenticator/' \
                -e 's/^authorizer: .*/authorizer: CassandraAuthorizer/' "$yaml"
            ;;
        *) die "SEQLINE_CASSANDRA_AUTH must be 'password' (got '$SEQLINE_CASSANDRA_AUTH')" ;;
    esac
    local keystore="${SEQLINE_CASSANDRA_TLS_KEYSTORE:-}"
    if [[ -n "$keystore" ]]; then
        [[ -r "$keystore" ]] || die "SEQLINE_CASSANDRA_TLS_KEYSTORE: cannot read $keystore"
        cat >>"$yaml" <<YAML

client_encryption_options:
  enabled: true
  optional: false
  require_client_auth: false
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: $keystore
YAML
    fi
}

# run DATA_DIR NATIVE_PORT STORAGE_PORT: the node in the foreground.
run() {
    [[ $# -eq 3 ]] || die "usage: $0 run DATA_DIR NATIVE_PORT STORAGE_PORT"
    local data="$1" native="$2" storage="$3"
    [[ "$native" =~ ^[0-9]+$ && "$storage" =~ ^[0-9]+$ ]] || die "ports must be numbers: $native $storage"
    install
    local java
    java="$(java_bin)"
    mkdir -p "$data"
    data="$(cd "$data" && pwd)"
    mkdir -p "$data/logs" "$data/data" "$data/commitlog" "$data/saved_caches" "$data/hints" "$data/cdc_raw"
    sed -e "s|@DATA@|$data|g" -e "s|@NATIVE_PORT@|$native|g" -e "s|@STORAGE_PORT@|$storage|g" \
        "$ENGINE_SRC/cassandra.yaml" >"$data/cassandra.yaml"
    secure_config "$data/cassandra.yaml"
    local jamm
    jamm="$(find "$LIBS" -name 'jamm-*.jar' | head -1)"
    [[ -n "$jamm" ]] || die "no jamm jar in $LIBS: run '$0 install' again"
    cd "$data"
    # Cassandra mlockall()s its whole heap when it may: as root (which may
    # lock any amount) that makes the node's RSS the full heap from the
    # start. Without the capability the lock fails (a warning in the log)
    # and memory is only touched as used.
    local nolock=()
    if [[ "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
        nolock=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock)
    fi
    if [[ -n "${SEQLINE_CASSANDRA_WATCH_PID:-}" ]]; then
        # A test's private node: when the test process dies without stopping
        # it, this watcher kills the JVM (this shell's PID, once exec'd).
        local watched="$SEQLINE_CASSANDRA_WATCH_PID" me=$$
        (
            while kill -0 "$watched" 2>/dev/null && kill -0 "$me" 2>/dev/null; do sleep 1; done
            kill -0 "$watched" 2>/dev/null || kill -KILL "$me" 2>/dev/null
        ) </dev/null >/dev/null 2>&1 &
    fi
    # JVM flags: Cassandra's jvm-server.options and jvm17-server.options
    # (GC, JPMS), a fixed small heap, and start-up shortcuts for one node.
    exec "${nolock[@]}" "$java" \
        -Xms1g -Xmx1g -Xmn128m -Xss256k \
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m \
        -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70 \
        -XX:+UseThreadPriorities -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$data/logs" \
        -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem -XX:-UsePerfData \
        -XX:ErrorFile="$data/logs/hs_err_%p.log" \
        -ea -da:net.openhft... \
        -javaagent:"$jamm" \
        -Djava.net.preferIPv4Stack=true \
        -Djdk.attach.allowAttachSelf=true \
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
        --add-exports java.sql/java.sql=ALL-UNNAMED \
        --add-exports java.base/java.lang.ref=ALL-UNNAMED \
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
        --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
        --add-opens java.base/java.lang.module=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
        --add-opens java.base/java.io=ALL-UNNAMED \
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
        --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
        --add-opens java.base/java.lang=ALL-UNNAMED \
        --add-opens java.base/java.util=ALL-UNNAMED \
        -Dio.netty.tryReflectionSetAccessible=true \
        -Dio.netty.allocator.useCacheForAllThreads=true \
        -Dio.netty.allocator.maxOrder=11 \
        -Dcassandra-foreground=yes \
        -Dcassandra.config="file://$data/cassandra.yaml" \
        -Dcassandra.storagedir="$data" \
        -Dcassandra.logdir="$data/logs" \
        -Dlogback.configurationFile="file://$ENGINE_SRC/logback.xml" \
        -Dcassandra.skip_wait_for_gossip_to_settle=0 \
        -Dcassandra.ring_delay_ms=1000 \
        -Dcassandra.initial_token=0 \
        -Dcassandra.superuser_setup_delay_ms=0 \
        -Dcassandra.available_processors=2 \
        -cp "$LIBS/*" \
        org.apache.cassandra.service.CassandraDaemon
}

# The PID in the file, if that process is still this node's JVM.
running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "CassandraDaemon" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-Dcassandra.storagedir=$DIR " || return 1
    echo "$pid"
}

cql_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    install
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    PIDFILE="$DIR/cassandra.pid"
    local pid
    if pid="$(running_pid)"; then
        echo "cassandra already running (pid $pid) on 127.0.0.1:$PORT"
        echo "export SEQLINE_TEST_CASSANDRA=127.0.0.1:$PORT"
        return
    fi
    if cql_open "$PORT"; then
        die "port $PORT is taken by another process; set SEQLINE_CASSANDRA_PORT"
    fi
    local started=$SECONDS
    setsid bash "$ROOT/scripts/cassandra.sh" run "$DIR" "$PORT" "$STORAGE_PORT" </dev/null >"$DIR/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$((SECONDS + START_WAIT))
    until cql_open "$PORT"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -20 "$DIR/stdout.log" "$DIR/logs/system.log" 2>/dev/null >&2 || true
            rm -f "$PIDFILE"
            die "cassandra exited at start-up; see $DIR/logs/system.log and $DIR/stdout.log"
        fi
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            die "cassandra did not accept CQL on 127.0.0.1:$PORT within ${START_WAIT} s (killed pid $pid); see $DIR/logs/system.log"
        fi
        sleep 0.5
    done
    echo "cassandra running (pid $pid) on 127.0.0.1:$PORT, up in $((SECONDS - started)) s; data and logs in $DIR"
    echo "export SEQLINE_TEST_CASSANDRA=127.0.0.1:$PORT"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "no cassandra started by this script on port $PORT"
        rm -f "$PIDFILE"
        return
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "cassandra (pid $pid) did not stop within 30 s: killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    echo "cassandra (pid $pid) stopped"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        local rss
        rss="$(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
        if cql_open "$PORT"; then
            echo "cassandra running (pid $pid, RSS $rss) on 127.0.0.1:$PORT, accepting CQL; data in $DIR"
        else
            echo "cassandra running (pid $pid, RSS $rss), not yet accepting CQL on 127.0.0.1:$PORT; data in $DIR"
        fi
    else
        echo "no cassandra started by this script on port $PORT"
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
        echo "usage: $0 install|start|stop|status|run DATA_DIR NATIVE_PORT STORAGE_PORT" >&2
        exit 2
        ;;
esac
