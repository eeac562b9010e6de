"""``meetings_cdc_dead_letters_total`` equals the records on the dead-letter topic."""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import Consumer, KafkaError

from tests.connector_process import ConnectorProcess
from tests.integration.harness import ChangeLog, connector_env, free_port, metric_sample

EVENT = 1
T0 = 1_900_000_000


def count_committed(bootstrap: str, topic: str) -> int:
    """Records a read_committed consumer finds on ``topic`` (read to its end)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.subscribe([topic])
        count, eof = 0, False
        for _ in range(100):
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                error = msg.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    eof = True
            if eof:
                return count
        raise AssertionError(f"never reached the end of {topic}")
    finally:
        consumer.close()


async def dead_letters_metric(port: int) -> float:
    value = await metric_sample(port, "meetings_cdc_dead_letters_total")
    if value is None:
        raise AssertionError("no meetings_cdc_dead_letters_total")
    return value


async def test_the_dead_letter_counter_equals_the_records_on_the_dead_letter_topic(
    simulator, kafka_bootstrap, unique_name
):
    for i in range(30):
        await simulator.create(event_id=EVENT, start=T0 + i * 60, participants=[1, 2, 3])
    await asyncio.sleep(2.2)  # past the settle delay: the snapshot reads them
    await simulator.set_faults(bad_row_rate=0.1, seed=4)
    port = free_port()
    env = connector_env(
        api_base_url=simulator.base_url,
        event_ids=str(EVENT),
        bootstrap=kafka_bootstrap,
        name=unique_name("dlq"),
        MEETINGS_CDC_METRICS_PORT=str(port),
    )
    connector = await ConnectorProcess(env).start()
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        await log.wait_for(lambda ev: len(ev) >= 10, 60, "the snapshot")
        # New meetings while rows keep going bad: more cycles with dead letters.
        for i in range(5):
            await simulator.create(event_id=EVENT, start=T0 + i, participants=[4, 5])
            await asyncio.sleep(0.5)
        await simulator.clear_faults()
        marker = await simulator.create(event_id=EVENT, start=T0, participants=[6, 7])
        # the marker's event is committed after every cycle that had bad rows
        await log.wait_for(lambda ev: any(e["meeting_id"] == marker for e in ev), 60, "marker")

        on_topic = await asyncio.to_thread(
            count_committed, kafka_bootstrap, env["MEETINGS_CDC_DLQ_TOPIC"]
        )
        assert on_topic > 0
        assert await dead_letters_metric(port) == on_topic
    finally:
        log.close()
        await connector.stop_quietly()
