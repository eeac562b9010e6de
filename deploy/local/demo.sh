#!/usr/bin/env bash
# make demo: a local broker, the API simulator with churn, the connector, and `tail` showing
# classified change events as they are committed. Ctrl-C stops everything it started.
#
# Everything binds 127.0.0.1. Ports: DEMO_SIMULATOR_PORT (18080), DEMO_METRICS_PORT (9400),
# KAFKA_PORT (19092; a broker already running there is used and left running). At exit the
# demo's topics (demo.<run>.*) are deleted; the logs of the simulator and the connector are
# kept in ${TMPDIR:-/tmp}/meetings-cdc-demo-<run>/ and their paths printed.
#
# DEMO_REGISTRY=1 adds a schema registry: Apicurio Registry on REGISTRY_PORT (18081; one
# already answering there is used and left running, else `make registry-up`'s script starts
# one and stops it at exit), MEETINGS_CDC_SCHEMA_REGISTRY_URL given to the connector and tail,
# so records are in the Confluent wire format. At exit the demo's subjects are deleted from a
# registry it did not start (one it started forgets them: its storage is in memory).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-.venv/bin/python}"
BIN="$(cd "$(dirname "$PY")" && pwd)/meetings-cdc"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
SIM_PORT="${DEMO_SIMULATOR_PORT:-18080}"
METRICS_PORT="${DEMO_METRICS_PORT:-9400}"
BOOTSTRAP="127.0.0.1:${KAFKA_PORT:-19092}"
DEMO_REGISTRY="${DEMO_REGISTRY:-0}"
REGISTRY_URL="http://127.0.0.1:${REGISTRY_PORT:-18081}/apis/ccompat/v7"
EVENT_ID=42
RUN_ID="$(date +%s)"
LOG_DIR="${TMPDIR:-/tmp}/meetings-cdc-demo-$RUN_ID"
TOPIC_PREFIX="demo.$RUN_ID."
mkdir -p "$LOG_DIR"
pids=()
started_kafka=0
started_registry=0

delete_topics() {
  "$PY" - "$BOOTSTRAP" "$TOPIC_PREFIX" <<'PYTHON' || echo "demo: could not delete the topics ${TOPIC_PREFIX}*"
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(sys.argv[2])]
for name, future in admin.delete_topics(names).items() if names else ():
    future.result(timeout=30)
print(f"demo: deleted topics {', '.join(sorted(names)) or '(none)'}")
PYTHON
}

delete_subjects() {
  "$PY" - "$REGISTRY_URL" "$TOPIC_PREFIX" <<'PYTHON' || echo "demo: could not delete the subjects ${TOPIC_PREFIX}*"
import json, sys, urllib.parse, urllib.request
url, prefix = sys.argv[1], sys.argv[2]
def call(method, path):
    request = urllib.request.Request(url + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")
names = [s for s in call("GET", "/subjects") if s.startswith(prefix)]
for name in names:
    quoted = urllib.parse.quote(name, safe="")
    call("DELETE", f"/subjects/{quoted}")  # soft, then permanent (as Confluent requires)
    call("DELETE", f"/subjects/{quoted}?permanent=true")
print(f"demo: deleted subjects {', '.join(sorted(names)) or '(none)'}")
PYTHON
}

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "$started_kafka" == 1 ]]; then
    PYTHON="$PY" deploy/local/kafka.sh down  # its data goes with it
  else
    delete_topics
  fi
  if [[ "$started_registry" == 1 ]]; then
    PYTHON="$PY" deploy/local/registry.sh down  # in memory: its subjects go with it
  elif [[ "$DEMO_REGISTRY" == 1 ]]; then
    delete_subjects
  fi
  echo "demo: logs kept in $LOG_DIR/ (simulator.log, connector.log)"
}
trap cleanup INT TERM EXIT

if ! PYTHON="$PY" deploy/local/kafka.sh status >/dev/null; then
  PYTHON="$PY" deploy/local/kafka.sh up
  started_kafka=1
fi
if [[ "$DEMO_REGISTRY" == 1 ]]; then
  if ! PYTHON="$PY" deploy/local/registry.sh status >/dev/null; then
    PYTHON="$PY" deploy/local/registry.sh up
    started_registry=1
  fi
  export MEETINGS_CDC_SCHEMA_REGISTRY_URL="$REGISTRY_URL"
fi

"$BIN" simulate --host 127.0.0.1 --port "$SIM_PORT" --event-id "$EVENT_ID" \
  --meetings 200 --churn-per-second 2 --seed "$RUN_ID" >"$LOG_DIR/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT") 2>/dev/null && break
  sleep 0.2
done

export MEETINGS_CDC_API_BASE_URL="http://127.0.0.1:$SIM_PORT"
export MEETINGS_CDC_EVENT_IDS="$EVENT_ID"
export MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP"
export MEETINGS_CDC_CHANGES_TOPIC="${TOPIC_PREFIX}meetings.changes"
export MEETINGS_CDC_STATE_TOPIC="${TOPIC_PREFIX}meetings.state"
export MEETINGS_CDC_DLQ_TOPIC="${TOPIC_PREFIX}meetings.dlq"
export MEETINGS_CDC_CONNECTOR_NAME="demo-$RUN_ID"
export MEETINGS_CDC_POLL_INTERVAL_SECONDS=1
export MEETINGS_CDC_SETTLE_SECONDS=1
export MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS=30
export MEETINGS_CDC_METRICS_HOST=127.0.0.1
export MEETINGS_CDC_METRICS_PORT="$METRICS_PORT"
"$BIN" run >"$LOG_DIR/connector.log" 2>&1 &
pids+=($!)

if [[ "$DEMO_REGISTRY" == 1 ]]; then
  echo "demo: registry   $REGISTRY_URL/subjects  (records in the Confluent wire format)"
fi
cat <<MSG
demo: simulator  http://127.0.0.1:$SIM_PORT/api/v2/meetings/export?event_id=$EVENT_ID
demo: connector  http://127.0.0.1:$METRICS_PORT/status  (metrics: /metrics)
demo: logs       $LOG_DIR/simulator.log, $LOG_DIR/connector.log
demo: change events of $MEETINGS_CDC_CHANGES_TOPIC follow (200 SNAPSHOT events first, then live changes). Ctrl-C stops.
MSG
# tail in the background so this shell can run cleanup() at Ctrl-C or SIGTERM right away
"$BIN" tail --topic "$MEETINGS_CDC_CHANGES_TOPIC" --from-beginning --format summary \
  --topic-timeout 60 &
pids+=($!)
wait "${pids[-1]}"
