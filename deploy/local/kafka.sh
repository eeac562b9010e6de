#!/usr/bin/env bash
# Starts and stops a single-node Apache Kafka broker (KRaft) on 127.0.0.1 for local
# development and tests. Jars come from Maven Central via deploy/local/pom.xml and are
# cached in $MEETINGS_CDC_CACHE (default ~/.cache/meetings-cdc), so later starts are offline.
#
#   deploy/local/kafka.sh up     start (no-op when already running); returns when it answers
#   deploy/local/kafka.sh down   stop the broker this script started (by its pid file)
#   deploy/local/kafka.sh status   exit 0 when running, 3 when not
#
# KAFKA_PORT (default 19092) picks the client port; the controller uses KAFKA_PORT+1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
port="${KAFKA_PORT:-19092}"
controller_port="$((port + 1))"
cache="${MEETINGS_CDC_CACHE:-$HOME/.cache/meetings-cdc}"
libs="$cache/kafka-$kafka_version/libs"
run_dir="$cache/run/kafka-$port"
pid_file="$run_dir/kafka.pid"
log_file="$run_dir/kafka.log"

log() { echo "kafka.sh: $*" >&2; }

is_running() {
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

fetch_jars() {
  if [[ -f "$libs/.complete" ]]; then return; fi
  log "resolving Kafka $kafka_version jars from Maven Central into $libs"
  mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete"
}

broker_answers() {
  # A metadata request through the broker's own client tooling would need the tools jar;
  # instead ask with the Python client when available, else trust the port.
  if [[ -n "${PYTHON:-}" ]] && "$PYTHON" - "$port" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"})
md = admin.list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
PY
  then return 0; fi
  [[ -z "${PYTHON:-}" ]] && port_open "$port"
}

up() {
  if is_running; then
    log "already running on 127.0.0.1:$port (pid $(cat "$pid_file"))"
    return 0
  fi
  if port_open "$port"; then
    log "port $port is taken by another process; set KAFKA_PORT to use another port"
    return 1
  fi
  command -v java >/dev/null || { log "java not found: install Java 17"; return 1; }
  fetch_jars
  mkdir -p "$run_dir"
  local data="$run_dir/data"
  cat > "$run_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
log.segment.bytes=16777216
PROPS
  local cp
  cp="$(find "$libs" -name '*.jar' | sort | tr '\n' ':')"
  local java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto
    -Dlog4j2.configurationFile="$here/log4j2.properties" -Djava.awt.headless=true)
  if [[ ! -f "$data/meta.properties" ]]; then
    rm -rf "$data"
    java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format --standalone \
      -t "meetings-cdc-local-$port" -c "$run_dir/server.properties" >"$run_dir/format.log" 2>&1 \
      || { log "formatting storage failed:"; cat "$run_dir/format.log" >&2; return 1; }
  fi
  nohup java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$run_dir/server.properties" \
    >"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
  local deadline=$((SECONDS + 90))
  until broker_answers; do
    if ! is_running; then
      log "broker exited during start-up; last lines of $log_file:"
      tail -n 30 "$log_file" >&2
      rm -f "$pid_file"
      return 1
    fi
    if ((SECONDS > deadline)); then
      log "broker did not answer within 90 s; see $log_file"
      down
      return 1
    fi
    sleep 0.3
  done
  log "Kafka $kafka_version up on 127.0.0.1:$port (pid $(cat "$pid_file"), log $log_file)"
}

down() {
  if ! is_running; then
    rm -f "$pid_file"
    log "not running on port $port"
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "broker $pid did not stop in 20 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  log "stopped broker $pid"
}

# Exit status 0 when running, 3 when not (as LSB init scripts do).
status() {
  if is_running; then
    echo "running on 127.0.0.1:$port (pid $(cat "$pid_file"))"
  else
    echo "stopped"
    return 3
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
