#!/usr/bin/env bash
# make demo: a local broker, the API simulator with churn, the connector, and `tail` showing
# classified change events as they are committed. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PY:-.venv/bin/python}"
BIN="$(cd "$(dirname "$PY")" && pwd)/meetings-cdc"
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
SIM_PORT="${DEMO_SIMULATOR_PORT:-18080}"
METRICS_PORT="${DEMO_METRICS_PORT:-9400}"
EVENT_ID=42
RUN_ID="$(date +%s)"
pids=()

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${started_kafka:-0}" == 1 ]]; then PYTHON="$PY" deploy/local/kafka.sh down; fi
}
trap cleanup INT TERM EXIT

started_kafka=0
if ! PYTHON="$PY" deploy/local/kafka.sh status >/dev/null; then
  PYTHON="$PY" deploy/local/kafka.sh up
  started_kafka=1
fi

"$BIN" simulate --host 127.0.0.1 --port "$SIM_PORT" --event-id "$EVENT_ID" \
  --meetings 200 --churn-per-second 2 --seed "$RUN_ID" >/tmp/meetings-cdc-demo-simulator.log 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$SIM_PORT") 2>/dev/null && break
  sleep 0.2
done

export MEETINGS_CDC_API_BASE_URL="http://127.0.0.1:$SIM_PORT"
export MEETINGS_CDC_EVENT_IDS="$EVENT_ID"
export MEETINGS_CDC_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT:-19092}"
export MEETINGS_CDC_CHANGES_TOPIC="demo.$RUN_ID.meetings.changes"
export MEETINGS_CDC_STATE_TOPIC="demo.$RUN_ID.meetings.state"
export MEETINGS_CDC_DLQ_TOPIC="demo.$RUN_ID.meetings.dlq"
export MEETINGS_CDC_CONNECTOR_NAME="demo-$RUN_ID"
export MEETINGS_CDC_POLL_INTERVAL_SECONDS=1
export MEETINGS_CDC_SETTLE_SECONDS=1
export MEETINGS_CDC_RECONCILE_INTERVAL_SECONDS=30
export MEETINGS_CDC_METRICS_PORT="$METRICS_PORT"
"$BIN" run >/tmp/meetings-cdc-demo-connector.log 2>&1 &
pids+=($!)

cat <<MSG
demo: simulator  http://127.0.0.1:$SIM_PORT/api/v2/meetings/export?event_id=$EVENT_ID
demo: connector  http://127.0.0.1:$METRICS_PORT/status  (metrics: /metrics, logs: /tmp/meetings-cdc-demo-connector.log)
demo: change events of $MEETINGS_CDC_CHANGES_TOPIC follow (200 SNAPSHOT events first, then live changes). Ctrl-C stops.
MSG
"$BIN" tail --topic "$MEETINGS_CDC_CHANGES_TOPIC" --from-beginning --format summary
